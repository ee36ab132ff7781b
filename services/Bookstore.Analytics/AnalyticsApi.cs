using System.Diagnostics;
using Bookstore.Analytics.Data;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Bookstore.ServiceDefaults;
using Confluent.Kafka;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Data.Sqlite;

namespace Bookstore.Analytics;

public sealed record ReplayResult(long EventsRead, long Skipped, double Seconds, Summary Summary);

public static class AnalyticsApi
{
    private static readonly SemaphoreSlim OneReplay = new(1, 1);

    public static IEndpointRouteBuilder MapAnalyticsApi(this IEndpointRouteBuilder app)
    {
        var analytics = app.MapGroup("/analytics").WithTags("Analytics");
        analytics.MapGet("/summary", GetSummary).WithSummary("Orders placed, confirmed, cancelled, revenue, top books, events per topic");
        analytics.MapPost("/replay", Replay).RequireAdminKey().WithSummary("Rebuild every figure by re-reading the retained log from the earliest offset (admin key)");
        return app;
    }

    private static async Task<Ok<Summary>> GetSummary(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await AnalyticsStore.SummaryAsync(connection));
    }

    /// <summary>Clears the facts and reads every partition of the seed topics from its earliest
    /// retained offset to its end, all in one transaction. The end offsets are taken once that
    /// transaction holds the write lock, so the live consumer can add nothing in between: what it
    /// records afterwards is either beyond them or already there (facts are keyed by event id).</summary>
    private static async Task<Results<Ok<ReplayResult>, ProblemHttpResult>> Replay(ServiceDatabase database, MessagingOptions options, CancellationToken cancellationToken)
    {
        if (!await OneReplay.WaitAsync(0, cancellationToken))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A replay is running", detail: "Try again when it has finished.");
        }

        try
        {
            var clock = Stopwatch.StartNew();
            var (read, skipped) = await database.WriteAsync(
                async transaction =>
                {
                    await AnalyticsStore.ClearAsync(transaction);
                    return await ReadAllAsync(transaction, options, TimeSpan.FromMinutes(2));
                },
                cancellationToken);
            await using var connection = await database.OpenAsync(cancellationToken);
            return TypedResults.Ok(new ReplayResult(read, skipped, clock.Elapsed.TotalSeconds, await AnalyticsStore.SummaryAsync(connection)));
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

    private static async Task<(long Read, long Skipped)> ReadAllAsync(SqliteTransaction transaction, MessagingOptions options, TimeSpan deadline)
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
        long read = 0, skipped = 0;
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
                skipped++;
                continue;
            }

            await AnalyticsStore.RecordAsync(transaction, cloudEvent.Id, options.LogicalTopicName(result.Topic), definition, data, cloudEvent.Time);
            read++;
        }

        return (read, skipped);
    }

    private static bool TryRead(ConsumeResult<byte[], byte[]> result, out CloudEvent cloudEvent, out EventDefinition definition, out object data)
    {
        cloudEvent = null!;
        definition = null!;
        data = null!;
        try
        {
            cloudEvent = EventSerializer.Parse(System.Text.Encoding.UTF8.GetString(result.Message.Value ?? []));
            if (EventCatalog.Find(cloudEvent.Type) is not { } found)
            {
                return false;
            }

            definition = found;
            data = EventSerializer.ReadData(cloudEvent, definition);
            return true;
        }
        catch (PoisonMessageException)
        {
            return false; // The live consumer dead-lettered it; a replay skips it the same way.
        }
    }
}
