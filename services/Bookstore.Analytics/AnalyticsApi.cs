using System.Diagnostics;
using Bookstore.Analytics.Data;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Bookstore.ServiceDefaults;
using Confluent.Kafka;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Bookstore.Analytics;

/// <param name="EventsRead">Events read from the retained log.</param>
/// <param name="Recorded">Of those, the ones that had no fact yet (the others were recorded already, or folded).</param>
/// <param name="Skipped">Records that are no known event (the live consumer dead-lettered them).</param>
/// <param name="Transactions">Write transactions the replay took; the live consumer writes in between.</param>
public sealed record ReplayResult(long EventsRead, long Recorded, long Skipped, int Transactions, double Seconds, Summary Summary);

/// <summary>Analytics' own settings (section <c>Analytics</c>).</summary>
public sealed class AnalyticsOptions
{
    /// <summary>Events a replay records per write transaction: the live consumer waits for one at most.</summary>
    public int ReplayBatchSize { get; set; } = 2_000;
}

public static class AnalyticsApi
{
    private static readonly SemaphoreSlim OneReplay = new(1, 1);

    public static IEndpointRouteBuilder MapAnalyticsApi(this IEndpointRouteBuilder app)
    {
        var analytics = app.MapGroup("/analytics").WithTags("Analytics");
        analytics.MapGet("/summary", GetSummary).WithSummary("Orders placed, confirmed, cancelled, revenue, top books, events per topic");
        analytics.MapPost("/replay", Replay).RequireAdminKey().WithSummary("Re-read the retained log from the earliest offset and record what is missing (admin key)");
        return app;
    }

    private static async Task<Ok<Summary>> GetSummary(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await AnalyticsStore.SummaryAsync(connection));
    }

    /// <summary>Reads every partition of the seed topics from its earliest retained offset to the
    /// end offset it had when the replay began, and records each event that has no fact yet, a batch
    /// of <see cref="AnalyticsOptions.ReplayBatchSize"/> per short write transaction, so the live
    /// consumer carries on in between. Nothing is cleared: facts are keyed by event id, so what the
    /// live consumer recorded before or meanwhile is not counted twice, and what is older than the
    /// retained log stays, among the facts or in the roll-ups (an event older than the latest fold is
    /// not recorded again).</summary>
    private static async Task<Results<Ok<ReplayResult>, ProblemHttpResult>> Replay(
        ServiceDatabase database, MessagingOptions options, AnalyticsOptions analytics, CancellationToken cancellationToken)
    {
        if (!await OneReplay.WaitAsync(0, cancellationToken))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A replay is running", detail: "Try again when it has finished.");
        }

        try
        {
            var clock = Stopwatch.StartNew();
            var replay = new ReplayProgress();
            await ReadAllAsync(database, options, Math.Max(1, analytics.ReplayBatchSize), TimeSpan.FromMinutes(2), replay, cancellationToken);
            await using var connection = await database.OpenAsync(cancellationToken);
            return TypedResults.Ok(new ReplayResult(
                replay.Read, replay.Recorded, replay.Skipped, replay.Transactions, clock.Elapsed.TotalSeconds, await AnalyticsStore.SummaryAsync(connection)));
        }
        catch (TimeoutException e)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Replay timed out", detail: e.Message);
        }
        finally
        {
            OneReplay.Release();
        }
    }

    private sealed class ReplayProgress
    {
        public long Read { get; set; }

        public long Recorded { get; set; }

        public long Skipped { get; set; }

        public int Transactions { get; set; }
    }


    private static async Task ReadAllAsync(ServiceDatabase database, MessagingOptions options, int batchSize, TimeSpan deadline, ReplayProgress progress, CancellationToken cancellationToken)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(KafkaClientConfigs.Consumer(options.Connection(), options.GroupId + "-replay", $"{options.ServiceName}-replay"))
            .SetLogHandler((_, _) => { })
            .Build();
        var remaining = new Dictionary<TopicPartition, long>();
        foreach (var topic in Topics.Seed)
        {
            for (var p = 0; p < topic.Partitions; p++)
            {
                var partition = new TopicPartition(options.TopicName(topic.Name), p);
                var marks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
                if (marks.High.Value > marks.Low.Value)
                {
                    remaining[partition] = marks.High.Value;
                }
            }
        }

        consumer.Assign(remaining.Keys.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));
        var batch = new List<ConsumedEvent>(batchSize);
        var clock = Stopwatch.StartNew();
        while (remaining.Count > 0)
        {
            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"{remaining.Count} partition(s) not read to the end after {deadline}.");
            }

            if (consumer.Consume(TimeSpan.FromMilliseconds(500)) is not { } result)
            {
                continue;
            }

            // A finished partition's later records arrived after the snapshot: the live consumer's.
            if (!remaining.TryGetValue(result.TopicPartition, out var end))
            {
                continue;
            }

            if (result.Offset.Value + 1 >= end)
            {
                remaining.Remove(result.TopicPartition);
            }

            if (!TryRead(result, out var cloudEvent, out var definition, out var data))
            {
                progress.Skipped++;
                continue;
            }

            batch.Add(new ConsumedEvent(cloudEvent, definition, data, options.LogicalTopicName(result.Topic), result.Partition.Value, result.Offset.Value));
            progress.Read++;
            if (batch.Count >= batchSize)
            {
                await RecordAsync(database, batch, progress, cancellationToken);
            }
        }

        await RecordAsync(database, batch, progress, cancellationToken);
    }

    private static async Task RecordAsync(ServiceDatabase database, List<ConsumedEvent> batch, ReplayProgress progress, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

        progress.Recorded += await database.WriteAsync(transaction => AnalyticsStore.RecordAsync(transaction, batch), cancellationToken);
        progress.Transactions++;
        batch.Clear();
    }

    private static bool TryRead(ConsumeResult<byte[], byte[]> result, out CloudEvent cloudEvent, out EventDefinition definition, out object data)
    {
        cloudEvent = null!;
        definition = null!;
        data = null!;
        try
        {
            (cloudEvent, definition) = EventSerializer.ReadKnown(result.Message.Value);
            data = EventSerializer.ReadData(cloudEvent, definition);
            return true;
        }
        catch (PoisonMessageException)
        {
            return false; // The live consumer dead-lettered it; a replay skips it the same way.
        }
    }
}
