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
    ILogger<ConsumerHost> logger) : BackgroundService
{
    private const string Savepoint = "message";
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan StallCheckInterval = TimeSpan.FromSeconds(15);
    private readonly Dictionary<TopicPartition, long> _positions = [];
    private long _nextStallCheck;

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

    /// <summary>A partition with messages waiting whose position has not moved for a whole check
    /// interval is fetched afresh from where it stands (seen once under sustained load on 0.9: a
    /// partition stopped being delivered until the process restarted). Harmless otherwise: a seek
    /// to the current position only re-fetches.</summary>
    private void RestartStalledPartitions(IConsumer<byte[], byte[]> consumer)
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (now < _nextStallCheck)
        {
            return;
        }

        _nextStallCheck = now + (long)(StallCheckInterval.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        foreach (var partition in consumer.Assignment)
        {
            var position = consumer.Position(partition).Value;
            var high = consumer.GetWatermarkOffsets(partition).High.Value;
            var stalled = position >= 0 && high > position && _positions.TryGetValue(partition, out var before) && before == position;
            _positions[partition] = position;
            if (stalled)
            {
                LogStalled(options.GroupId, partition.Topic, partition.Partition.Value, position, high);
                try
                {
                    consumer.Seek(new TopicPartitionOffset(partition, position));
                }
                catch (KafkaException e)
                {
                    LogConsumeError(options.GroupId, e.Error.Reason);
                }
            }
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

    /// <summary>The common case in one pass: the batch's event ids recorded with one statement,
    /// the new events handled without per-message savepoints. When a handler fails, that pass is
    /// rolled back and the batch is handled again message by message, each in a savepoint with
    /// retries and a dead letter as the last resort.</summary>
    private async Task ProcessBatchAsync(List<ConsumeResult<byte[], byte[]>> batch)
    {
        var messages = batch.Select(Read).ToList();
        try
        {
            await database.WriteAsync(transaction => HandleAllAsync(transaction, messages));
        }
        catch (HandlerFailedException)
        {
            await database.WriteAsync(async transaction =>
            {
                foreach (var result in batch)
                {
                    await ProcessMessageAsync(transaction, result);
                }
            });
        }
    }

    private async Task HandleAllAsync(SqliteTransaction transaction, List<IncomingMessage> messages)
    {
        var fresh = await MarkProcessedAsync(transaction, [.. messages.Where(m => m.Handlers.Count > 0 || (m.Definition is not null && registration.AnyEventHandlers.Count > 0)).Select(m => m.Event!.Id)]);
        foreach (var message in messages)
        {
            if (message.Poison is { } poison)
            {
                await DeadLetterAsync(transaction, message.Result, message.Topic, poison, 1, message.Event);
            }
            else if (fresh.Remove(message.Event!.Id))
            {
                try
                {
                    await InvokeHandlersAsync(transaction, message.Result, message.Topic, message.Event, message.Definition!, message.Handlers);
                }
                catch (Exception e) when (e is not OperationCanceledException && !IsDatabaseFailure(e))
                {
                    throw new HandlerFailedException(e);
                }
            }

            // Otherwise processed before (a re-delivery, or a duplicate within the batch), or a
            // known event this service has no business with.
        }
    }

    private IncomingMessage Read(ConsumeResult<byte[], byte[]> result)
    {
        var topic = options.LogicalTopicName(result.Topic);
        CloudEvent? cloudEvent = null;
        try
        {
            cloudEvent = EventSerializer.Parse(DeadLetter.StrictUtf8(result.Message.Value)
                ?? throw new PoisonMessageException("The value is missing or not UTF-8."));
            var definition = EventCatalog.Find(cloudEvent.Type)
                ?? throw new PoisonMessageException($"Unknown event type '{cloudEvent.Type}'.");
            return new IncomingMessage(result, topic, cloudEvent, definition, registration.HandlersOf(definition.TypeName), null);
        }
        catch (PoisonMessageException e)
        {
            return new IncomingMessage(result, topic, cloudEvent, null, [], e);
        }
    }

    private async Task ProcessMessageAsync(SqliteTransaction transaction, ConsumeResult<byte[], byte[]> result)
    {
        var topic = options.LogicalTopicName(result.Topic);
        CloudEvent? cloudEvent = null;
        EventDefinition? definition;
        try
        {
            cloudEvent = EventSerializer.Parse(DeadLetter.StrictUtf8(result.Message.Value)
                ?? throw new PoisonMessageException("The value is missing or not UTF-8."));
            definition = EventCatalog.Find(cloudEvent.Type)
                ?? throw new PoisonMessageException($"Unknown event type '{cloudEvent.Type}'.");
        }
        catch (PoisonMessageException e)
        {
            await DeadLetterAsync(transaction, result, topic, e, 1, cloudEvent);
            return;
        }

        var handlers = registration.HandlersOf(definition.TypeName);
        if (handlers.Count == 0 && registration.AnyEventHandlers.Count == 0)
        {
            return; // A known event that this service has no business with.
        }

        var attempts = 0;
        try
        {
            await _messageRetry.ExecuteAsync(
                async _ =>
                {
                    attempts++;
                    transaction.Save(Savepoint);
                    try
                    {
                        await HandleAsync(transaction, result, topic, cloudEvent, definition, handlers);
                        transaction.Release(Savepoint);
                    }
                    catch
                    {
                        transaction.Rollback(Savepoint);
                        transaction.Release(Savepoint);
                        throw;
                    }
                },
                CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException && !IsDatabaseFailure(e))
        {
            await DeadLetterAsync(transaction, result, topic, e, attempts, cloudEvent);
            await MarkProcessedAsync(transaction, [cloudEvent.Id]);
        }
    }

    private async Task HandleAsync(
        SqliteTransaction transaction,
        ConsumeResult<byte[], byte[]> result,
        string topic,
        CloudEvent cloudEvent,
        EventDefinition definition,
        IReadOnlyList<Func<IServiceProvider, EventContext, object, CancellationToken, Task>> handlers)
    {
        if ((await MarkProcessedAsync(transaction, [cloudEvent.Id])).Count == 0)
        {
            return; // Processed before: a re-delivery after a crash, or a producer retry on 0.9.
        }

        await InvokeHandlersAsync(transaction, result, topic, cloudEvent, definition, handlers);
    }

    private async Task InvokeHandlersAsync(
        SqliteTransaction transaction,
        ConsumeResult<byte[], byte[]> result,
        string topic,
        CloudEvent cloudEvent,
        EventDefinition definition,
        IReadOnlyList<Func<IServiceProvider, EventContext, object, CancellationToken, Task>> handlers)
    {
        var data = EventSerializer.ReadData(cloudEvent, definition);
        var context = new EventContext(transaction, outbox)
        {
            Event = cloudEvent,
            Topic = topic,
            Partition = result.Partition.Value,
            Offset = result.Offset.Value,
        };
        foreach (var handle in handlers)
        {
            await handle(services, context, data, CancellationToken.None);
        }

        foreach (var type in registration.AnyEventHandlers)
        {
            await ((IAnyEventHandler)services.GetRequiredService(type)).HandleAsync(context, definition, data, CancellationToken.None);
        }

        Interlocked.Increment(ref _processed);
    }

    /// <summary>Records the event ids; returns those recorded now, i.e. not processed before.</summary>
    private static async Task<HashSet<string>> MarkProcessedAsync(SqliteTransaction transaction, IReadOnlyList<string> eventIds)
    {
        var fresh = new HashSet<string>(StringComparer.Ordinal);
        const int Chunk = 500;
        for (var start = 0; start < eventIds.Count; start += Chunk)
        {
            var ids = eventIds.Skip(start).Take(Chunk).ToList();
            var parameters = new DynamicParameters();
            parameters.Add("at", DateTimeOffset.UtcNow.ToString("O"));
            for (var i = 0; i < ids.Count; i++)
            {
                parameters.Add($"id{i}", ids[i]);
            }

            var values = string.Join(", ", Enumerable.Range(0, ids.Count).Select(i => $"(@id{i}, @at)"));
            fresh.UnionWith(await transaction.Connection!.QueryAsync<string>(
                $"INSERT OR IGNORE INTO processed_events (event_id, processed_at) VALUES {values} RETURNING event_id",
                parameters,
                transaction));
        }

        return fresh;
    }

    private async Task DeadLetterAsync(SqliteTransaction transaction, ConsumeResult<byte[], byte[]> result, string topic, Exception error, int attempts, CloudEvent? cloudEvent)
    {
        var deadLetter = DeadLetter.For(options.GroupId, topic, result.Partition.Value, result.Offset.Value, result.Message.Key, result.Message.Value, error, attempts, cloudEvent);
        await Outbox.Outbox.AddRecordAsync(transaction, deadLetter.ToRecord());
        Interlocked.Increment(ref _deadLettered);
        LogDeadLettered(topic, result.Partition.Value, result.Offset.Value, options.GroupId, attempts, error.Message);
    }

    /// <summary>A failing database is not the message's fault: the batch is retried instead.</summary>
    private static bool IsDatabaseFailure(Exception e) =>
        e is SqliteException { SqliteErrorCode: 5 or 6 or 10 or 13 or 14 }; // BUSY, LOCKED, IOERR, FULL, CANTOPEN

    private IConsumer<byte[], byte[]> Build(string group)
    {
        var config = KafkaClientConfigs.Consumer(options.Connection(), group, $"{options.ServiceName}-{Environment.ProcessId}");
        // Stored offsets only (EnableAutoOffsetStore is off): what is committed is always covered
        // by a committed transaction; committing in the background keeps commits off the hot path.
        config.EnableAutoCommit = true;
        config.AutoCommitIntervalMs = 500;
        config.Debug = options.KafkaDebug;
        return new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler((_, m) =>
            {
                if (!KafkaLogs.IsExpected(m))
                {
                    logger.Log(options.KafkaDebug is null ? KafkaLogs.LevelOf(m) : LogLevel.Information, "librdkafka {Facility}: {Message}", m.Facility, m.Message);
                }
            })
            .SetErrorHandler((_, e) => LogConsumeError(group, e.Reason))
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
        PoisonMessageException? Poison);

    /// <summary>A handler failed in the one-pass handling of a batch: the batch is handled again, message by message.</summary>
    private sealed class HandlerFailedException(Exception inner) : Exception(inner.Message, inner);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: {Topic}/{Partition} has not moved from offset {Offset} (end {End}) for a while; fetching it afresh")]
    private partial void LogStalled(string group, string topic, int partition, long offset, long end);

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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead-lettered {Topic}/{Partition}@{Offset} of group {Group} after {Attempts} attempt(s): {Error}")]
    private partial void LogDeadLettered(string topic, int partition, long offset, string group, int attempts, string error);
}
