using System.Text.Json;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Confluent.Kafka;
using Dapper;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Bookstore.Messaging.Consuming;

/// <summary>The service's group member: consumes a batch per poll, handles it in one database
/// transaction (deduplicated by event id, failures isolated per message), and stores the offsets
/// only after that transaction committed; librdkafka commits stored offsets in the background and
/// on every revocation and shutdown. A crash anywhere therefore re-delivers, and the processed-event
/// record turns the re-delivery into a no-op.</summary>
public sealed partial class ConsumerHost(
    IServiceProvider services,
    ConsumerRegistration registration,
    ServiceDatabase database,
    Outbox.Outbox outbox,
    MessagingOptions options,
    Pruner pruner,
    ILogger<ConsumerHost> logger) : BackgroundService
{
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(100);
    private readonly FetchStallDetector _fetchStalls = new(options.FetchStallCheckInterval, TimeProvider.System);
    private FetchStallVerdict _fetchVerdict = FetchStallVerdict.None;
    private long _fetchRestarts;
    private long _fetchStatisticsSamples;

    private readonly ResiliencePipeline _messageRetry = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not (PoisonMessageException or OperationCanceledException)),
            MaxRetryAttempts = Math.Max(0, options.MaxAttempts - 1),
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(20),
        })
        .Build();

    private long _processed;
    private long _deadLettered;

    public long Processed => Interlocked.Read(ref _processed);

    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    /// <summary>Partitions fetched afresh because librdkafka had stopped fetching them.</summary>
    public long FetchRestarts => Interlocked.Read(ref _fetchRestarts);

    /// <summary>librdkafka statistics samples the fetch-stall check has read.</summary>
    public long FetchStatisticsSamples => Interlocked.Read(ref _fetchStatisticsSamples);

    /// <summary>The partitions this member owns now (physical topic names).</summary>
    public IReadOnlyList<TopicPartition> Assignment { get; private set; } = [];

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        var group = options.GroupId;
        using var consumer = Build(group);
        consumer.Subscribe(registration.Topics.Select(options.TopicName));
        LogStarted(group, string.Join(", ", registration.Topics));
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                RestartStalledPartitions(consumer);
                var batch = ConsumeBatch(consumer);
                if (batch.Count == 0)
                {
                    continue;
                }

                // The batch in hand is finished even when shutdown begins meanwhile.
                if (!await ProcessWithRetriesAsync(batch, stoppingToken))
                {
                    break;
                }

                StoreOffsets(consumer, batch);

                outbox.Committed();
            }
        }
        finally
        {
            CommitStored(consumer, "shutdown");
            consumer.Close();
            LogStopped(group);
        }
    }

    /// <summary>Fetches afresh, from the application's position, each partition librdkafka's own
    /// statistics show it stopped fetching although the broker has data (seen once under sustained
    /// load on 0.9: a partition stopped being delivered until the process restarted). The decision
    /// is <see cref="FetchStallDetector"/>'s; a busy or lagging application is never "stalled", so
    /// prefetched data is not thrown away.</summary>
    private void RestartStalledPartitions(IConsumer<byte[], byte[]> consumer)
    {
        var verdict = _fetchVerdict;
        if (ReferenceEquals(verdict, FetchStallVerdict.None))
        {
            return;
        }

        _fetchVerdict = FetchStallVerdict.None;
        foreach (var lingering in verdict.Lingering)
        {
            var s = lingering.Statistics;
            LogFetchStateLingering(options.GroupId, s.Topic, s.Partition, s.FetchState, (long)lingering.For.TotalSeconds, s.NextOffset, s.CommittedOffset, s.HighOffset);
        }

        foreach (var stall in verdict.Stalled)
        {
            var s = stall.Statistics;
            var position = consumer.Position(s.TopicPartition).Value;
            var restartAt = position >= 0 ? position : s.AppOffset >= 0 ? s.AppOffset : s.CommittedOffset;
            LogStalled(options.GroupId, s.Topic, s.Partition, s.NextOffset, s.HighOffset, (long)stall.IdleFor.TotalSeconds, s.FetchQueueCount, s.AppOffset, restartAt);
            if (restartAt < 0)
            {
                continue;
            }

            try
            {
                consumer.Seek(new TopicPartitionOffset(s.TopicPartition, restartAt));
                Interlocked.Increment(ref _fetchRestarts);
            }
            catch (KafkaException e)
            {
                LogConsumeError(options.GroupId, e.Error.Reason);
            }
        }
    }

    /// <summary>librdkafka calls this from within Consume(), on the consuming thread: the verdict is
    /// acted on by the loop right after, never concurrently.</summary>
    private void OnStatistics(string json)
    {
        try
        {
            var verdict = _fetchStalls.Observe(PartitionFetchStatistics.Parse(json), Assignment);
            Interlocked.Increment(ref _fetchStatisticsSamples);
            if (!ReferenceEquals(verdict, FetchStallVerdict.None))
            {
                _fetchVerdict = verdict;
            }
        }
        catch (JsonException e)
        {
            LogStatisticsUnreadable(options.GroupId, e.Message);
        }
    }

    private static void StoreOffsets(IConsumer<byte[], byte[]> consumer, List<ConsumeResult<byte[], byte[]>> batch)
    {
        foreach (var partition in batch.GroupBy(r => r.TopicPartition))
        {
            try
            {
                consumer.StoreOffset(new TopicPartitionOffset(partition.Key, partition.Max(r => r.Offset.Value) + 1));
            }
            catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_State)
            {
                // Revoked while the batch was in hand: its next owner reads these messages again
                // and finds them processed.
            }
        }
    }

    private List<ConsumeResult<byte[], byte[]>> ConsumeBatch(IConsumer<byte[], byte[]> consumer)
    {
        var batch = new List<ConsumeResult<byte[], byte[]>>();
        try
        {
            var timeout = PollTimeout;
            while (batch.Count < options.MaxBatchSize && consumer.Consume(timeout) is { } result)
            {
                if (!result.IsPartitionEOF)
                {
                    batch.Add(result);
                }

                timeout = TimeSpan.Zero;
            }
        }
        catch (ConsumeException e)
        {
            LogConsumeError(options.GroupId, e.Error.Reason);
        }

        return batch;
    }

    /// <summary>Retries a batch whose transaction failed as a whole (e.g. the database was
    /// unavailable): its offsets are not stored, so nothing is skipped. False when stopping first.</summary>
    private async Task<bool> ProcessWithRetriesAsync(List<ConsumeResult<byte[], byte[]>> batch, CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await ProcessBatchAsync(batch);
                return true;
            }
            catch (SqliteException e)
            {
                LogBatchFailed(e, options.GroupId, batch.Count);
                if (stoppingToken.IsCancellationRequested)
                {
                    return false;
                }

                await Task.Delay(delay, CancellationToken.None);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    /// <summary>One transaction for the batch: its event ids recorded with one statement (those
    /// already there were processed before: a re-delivery after a crash, a producer retry on 0.9, a
    /// duplicate within the batch), then each new event handled in a savepoint of its own, so a
    /// failing handler is retried, and finally dead-lettered, without undoing its neighbours.
    /// The counters move only once the transaction committed.</summary>
    private async Task ProcessBatchAsync(List<ConsumeResult<byte[], byte[]>> batch)
    {
        var messages = batch.Select(Read).Select(RefuseIfTooOld).ToList();
        var (handled, deadLettered) = await database.WriteAsync(async transaction =>
        {
            var fresh = await MarkProcessedAsync(transaction, [.. messages.Where(m => m.HasHandlers && m.Poison is null).Select(m => m.Event!.Id)]);
            using var savepoint = new Savepoint(transaction, "message");
            var outcome = (Handled: 0, DeadLettered: 0);
            foreach (var message in messages)
            {
                if (message.Poison is { } poison)
                {
                    await DeadLetterAsync(transaction, message, poison, attempts: 1);
                    outcome.DeadLettered++;
                }
                else if (fresh.Remove(message.Event!.Id))
                {
                    if (await HandleWithRetriesAsync(transaction, savepoint, message))
                    {
                        outcome.Handled++;
                    }
                    else
                    {
                        outcome.DeadLettered++;
                    }
                }
            }

            return outcome;
        });
        Interlocked.Add(ref _processed, handled);
        Interlocked.Add(ref _deadLettered, deadLettered);
    }

    private IncomingMessage Read(ConsumeResult<byte[], byte[]> result)
    {
        var topic = options.LogicalTopicName(result.Topic);
        CloudEvent? cloudEvent = null;
        try
        {
            // Parsed first on its own: a dead letter of an unknown type still names the event's id.
            cloudEvent = EventSerializer.Parse(result.Message.Value);
            var definition = EventSerializer.DefinitionOf(cloudEvent);
            var handlers = registration.HandlersOf(definition.TypeName);
            return new IncomingMessage(result, topic, cloudEvent, definition, handlers, null)
            {
                // A known event this service has no business with is neither handled nor recorded.
                HasHandlers = handlers.Count > 0 || registration.AnyEventHandlers.Count > 0,
            };
        }
        catch (PoisonMessageException e)
        {
            return new IncomingMessage(result, topic, cloudEvent, null, [], e);
        }
    }

    /// <summary>An event older than the processed-event ids kept may have been handled and
    /// forgotten: applying it could do its work twice, skipping it could lose it, so it goes to the
    /// dead letters for an operator. Kafka has deleted such events unless they sit in a partition's
    /// active segment (0.9 rolls a segment only when a record arrives) and the group's committed
    /// offset expired. A compacted topic's records are exempt: their handlers are idempotent upserts.</summary>
    private IncomingMessage RefuseIfTooOld(IncomingMessage message)
    {
        if (message is not { Poison: null, HasHandlers: true, Event: { } cloudEvent } || Bookstore.Contracts.Topics.All.Any(t => t.Name == message.Topic && t.Compacted))
        {
            return message;
        }

        var horizon = pruner.ProcessedEventsHorizon;
        return DateTimeOffset.UtcNow - cloudEvent.Time <= horizon
            ? message
            : message with
            {
                Poison = new PoisonMessageException(
                    $"Written at {cloudEvent.Time:O}, before the {horizon} for which this service remembers the events it handled: it cannot tell whether this one was, so it does not apply it."),
            };
    }

    /// <summary>True when handled; false when it failed every attempt and was dead-lettered
    /// (it stays recorded as processed: the dead letter is its outcome).</summary>
    private async Task<bool> HandleWithRetriesAsync(SqliteTransaction transaction, Savepoint savepoint, IncomingMessage message)
    {
        var attempts = 0;
        try
        {
            await _messageRetry.ExecuteAsync(
                async _ =>
                {
                    attempts++;
                    savepoint.Begin();
                    try
                    {
                        await InvokeHandlersAsync(transaction, message);
                        savepoint.Release();
                    }
                    catch
                    {
                        savepoint.Undo();
                        throw;
                    }
                },
                CancellationToken.None);
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException && !ServiceDatabase.IsUnavailable(e))
        {
            await DeadLetterAsync(transaction, message, e, attempts);
            return false;
        }
    }

    private async Task InvokeHandlersAsync(SqliteTransaction transaction, IncomingMessage message)
    {
        var (cloudEvent, definition) = (message.Event!, message.Definition!);
        var data = EventSerializer.ReadData(cloudEvent, definition);
        var context = new EventContext(transaction, outbox)
        {
            Event = cloudEvent,
            Topic = message.Topic,
            Partition = message.Result.Partition.Value,
            Offset = message.Result.Offset.Value,
        };
        foreach (var handle in message.Handlers)
        {
            await handle(services, context, data, CancellationToken.None);
        }

        foreach (var type in registration.AnyEventHandlers)
        {
            await ((IAnyEventHandler)services.GetRequiredService(type)).HandleAsync(context, definition, data, CancellationToken.None);
        }
    }

    /// <summary>Records the event ids with one statement (a JSON array as its one parameter);
    /// returns those recorded now, i.e. not processed before.</summary>
    private static async Task<HashSet<string>> MarkProcessedAsync(SqliteTransaction transaction, IReadOnlyList<string> eventIds)
    {
        if (eventIds.Count == 0)
        {
            return [];
        }

        var recorded = await transaction.Connection!.QueryAsync<string>(
            "INSERT OR IGNORE INTO processed_events (event_id, processed_at) SELECT value, @at FROM json_each(@ids) WHERE true RETURNING event_id",
            new { ids = JsonSerializer.Serialize(eventIds), at = DateTimeOffset.UtcNow.ToString("O") },
            transaction);
        return new HashSet<string>(recorded, StringComparer.Ordinal);
    }

    private async Task DeadLetterAsync(SqliteTransaction transaction, IncomingMessage message, Exception error, int attempts)
    {
        var result = message.Result;
        var deadLetter = DeadLetter.For(options.GroupId, message.Topic, result.Partition.Value, result.Offset.Value, result.Message.Key, result.Message.Value, error, attempts, message.Event);
        var record = deadLetter.ToRecord(options.MaxMessageBytes);
        await Outbox.Outbox.AddRecordAsync(transaction, record);
        if (record.Value.Length < (deadLetter.Value?.Length ?? 0))
        {
            LogDeadLetterTruncated(message.Topic, result.Partition.Value, result.Offset.Value, deadLetter.ValueBytes ?? 0);
        }

        LogDeadLettered(message.Topic, result.Partition.Value, result.Offset.Value, options.GroupId, attempts, error.Message);
    }

    private IConsumer<byte[], byte[]> Build(string group)
    {
        var config = KafkaClientConfigs.Consumer(options.Connection(), group, $"{options.ServiceName}-{Environment.ProcessId}");
        // Stored offsets only (EnableAutoOffsetStore is off): what is committed is always covered
        // by a committed transaction; committing in the background keeps commits off the hot path.
        config.EnableAutoCommit = true;
        config.AutoCommitIntervalMs = 500;
        config.Debug = options.KafkaDebug;
        // The fetch-stall check reads librdkafka's own view of each partition's fetcher: a few
        // samples per check interval.
        config.StatisticsIntervalMs = (int)Math.Clamp(options.FetchStallCheckInterval.TotalMilliseconds / 3, 100, 5_000);
        return new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler(KafkaLogs.ToLogger<IConsumer<byte[], byte[]>>(logger, verbose: options.KafkaDebug is not null))
            .SetErrorHandler((_, e) => LogConsumeError(group, e.Reason))
            .SetStatisticsHandler((_, json) => OnStatistics(json))
            .SetPartitionsAssignedHandler((c, partitions) =>
            {
                Assignment = [.. c.Assignment.Concat(partitions).Distinct()];
                LogAssigned(group, c.MemberId, Describe(partitions), Describe(Assignment));
            })
            .SetPartitionsRevokedHandler((c, partitions) =>
            {
                CommitStored(c, "revocation");
                Assignment = [.. c.Assignment.Except(partitions.Select(p => p.TopicPartition))];
                LogRevoked(group, c.MemberId, Describe(partitions.Select(p => p.TopicPartition)), Describe(Assignment));
            })
            .SetPartitionsLostHandler((c, partitions) =>
            {
                Assignment = [.. c.Assignment.Except(partitions.Select(p => p.TopicPartition))];
                LogLost(group, c.MemberId, Describe(partitions.Select(p => p.TopicPartition)));
            })
            .Build();
    }

    private void CommitStored(IConsumer<byte[], byte[]> consumer, string reason)
    {
        try
        {
            consumer.Commit();
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing stored since the last commit.
        }
        catch (KafkaException e)
        {
            LogCommitFailed(options.GroupId, reason, e.Error.Reason);
        }
    }

    private static string Describe(IEnumerable<TopicPartition> partitions)
    {
        var text = string.Join(" ", partitions.GroupBy(p => p.Topic).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key}[{string.Join(",", g.Select(p => p.Partition.Value).Order())}]"));
        return text.Length == 0 ? "(none)" : text;
    }

    private sealed record IncomingMessage(
        ConsumeResult<byte[], byte[]> Result,
        string Topic,
        CloudEvent? Event,
        EventDefinition? Definition,
        IReadOnlyList<Func<IServiceProvider, EventContext, object, CancellationToken, Task>> Handlers,
        PoisonMessageException? Poison)
    {
        public bool HasHandlers { get; init; }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: librdkafka has not fetched {Topic}/{Partition} from offset {NextOffset} for {IdleSeconds} s although the broker has data up to {End} (fetch queue {FetchQueueCount}, application at {AppOffset}); fetching it afresh from {RestartAt}")]
    private partial void LogStalled(string group, string topic, int partition, long nextOffset, long end, long idleSeconds, long fetchQueueCount, long appOffset, long restartAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: {Topic}/{Partition} has been in fetch state {FetchState} for {Seconds} s (next offset {NextOffset}, committed {CommittedOffset}, end {End})")]
    private partial void LogFetchStateLingering(string group, string topic, int partition, string fetchState, long seconds, long nextOffset, long committedOffset, long end);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: librdkafka's statistics could not be read: {Error}")]
    private partial void LogStatisticsUnreadable(string group, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Group {Group}: handled {Count} message(s) from {Partitions}, offsets {FirstOffset}..{LastOffset}")]
    private partial void LogBatch(string group, int count, string partitions, long firstOffset, long lastOffset);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: consuming {Topics}")]
    private partial void LogStarted(string group, string topics);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: left the group")]
    private partial void LogStopped(string group);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: member {Member} assigned {Partitions}; now owns {Assignment}")]
    private partial void LogAssigned(string group, string member, string partitions, string assignment);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: member {Member} revoked {Partitions}; now owns {Assignment}")]
    private partial void LogRevoked(string group, string member, string partitions, string assignment);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: member {Member} lost {Partitions} (session expired); they are re-delivered to their next owner")]
    private partial void LogLost(string group, string member, string partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: consume error: {Reason}")]
    private partial void LogConsumeError(string group, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: committing offsets on {Reason} failed: {Error}")]
    private partial void LogCommitFailed(string group, string reason, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Group {Group}: a batch of {Count} failed as a whole; retrying it")]
    private partial void LogBatchFailed(Exception exception, string group, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The dead letter of {Topic}/{Partition}@{Offset} carries only the start of its {Bytes}-byte value (too large to publish whole); the original stays at that offset")]
    private partial void LogDeadLetterTruncated(string topic, int partition, long offset, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead-lettered {Topic}/{Partition}@{Offset} of group {Group} after {Attempts} attempt(s): {Error}")]
    private partial void LogDeadLettered(string topic, int partition, long offset, string group, int attempts, string error);
}
