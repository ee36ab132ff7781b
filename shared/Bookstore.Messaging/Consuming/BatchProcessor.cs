using System.Text.Json;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Telemetry;
using System.Diagnostics;
using Confluent.Kafka;
using Dapper;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Bookstore.Messaging.Consuming;

/// <summary>What a consumed batch does to the service's database, with no Kafka client in sight
/// (so it is tested without a broker): one transaction per batch, duplicates recognised by event
/// id, and a message whose handler fails undone alone, retried, and finally dead-lettered through
/// the outbox.</summary>
public sealed partial class BatchProcessor(
    IServiceProvider services,
    ConsumerRegistration registration,
    ServiceDatabase database,
    Outbox.Outbox outbox,
    MessagingOptions options,
    Pruner pruner,
    MessagingMetrics metrics,
    ILogger<BatchProcessor> logger)
{
    private readonly ResiliencePipeline _messageRetry = MessageRetry(options.MaxAttempts - 1);

    // For a message that already failed once, in the first run of its batch (which was undone).
    private readonly ResiliencePipeline _messageRetryAfterFirstAttempt = MessageRetry(options.MaxAttempts - 2);

    private static ResiliencePipeline MessageRetry(int retries) => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsRetried),
            MaxRetryAttempts = Math.Max(0, retries),
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(20),
        })
        .Build();

    // A database failure (a deadlock, say) is not the message's: the batch's transaction is run
    // again as a whole, which a retry inside it, still holding its locks, would only delay.
    private static bool IsRetried(Exception e) =>
        e is not (PoisonMessageException or OperationCanceledException) && !ServiceDatabase.IsUnavailable(e);

    private static readonly HashSet<string> CompactedTopics = [.. Bookstore.Contracts.Topics.All.Where(t => t.Compacted).Select(t => t.Name)];

    // Settled by configuration at start-up: read once, not per message.
    private readonly TimeSpan _rememberedFor = pruner.ProcessedEventsHorizon;

    private long _processed;
    private long _deadLettered;

    public long Processed => Interlocked.Read(ref _processed);

    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    /// <summary>Retries a batch whose transaction failed as a whole (e.g. the database was
    /// unavailable): its offsets are not stored, so nothing is skipped. False when stopping first.</summary>
    /// <param name="fetchedAt">When the consumer fetched the batch (each event's journey records it).</param>
    public async Task<bool> ProcessWithRetriesAsync(List<ConsumeResult<byte[], byte[]>> batch, DateTimeOffset fetchedAt, CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await ProcessBatchAsync(batch, fetchedAt);
                return true;
            }
#pragma warning disable CA1031 // The transaction failed as a whole, whatever the cause: its offsets are not stored, so it is retried, never skipped.
            catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
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
    /// duplicate within the batch), then each new event handled. When a handler fails, the batch is
    /// undone and handled again with each event in a savepoint of its own, so that the failing one
    /// is retried, and finally dead-lettered, without undoing its neighbours.
    /// The counters move only once the transaction committed.</summary>
    private async Task ProcessBatchAsync(List<ConsumeResult<byte[], byte[]>> batch, DateTimeOffset fetchedAt)
    {
        var started = Stopwatch.GetTimestamp();
        var rememberedSince = DateTimeOffset.UtcNow - _rememberedFor;
        var messages = batch.Select(r => RefuseIfTooOld(Read(r), rememberedSince)).ToList();
        if (messages.TrueForAll(m => m is { HasHandlers: false, Poison: null }))
        {
            // Nothing to write: no transaction, whose lock the service's other writers would wait for.
            metrics.RecordBatch(Stopwatch.GetElapsedTime(started), batch.Count, []);
            return;
        }

        var afterCommit = new List<Action>();
        var outcomes = new Dictionary<(string Topic, string Type, string Outcome), int>();
        var (handled, deadLettered) = await database.WriteWithSavepointsOnFailureAsync("message", (transaction, savepoint, failedBefore) =>
            HandleBatchAsync(transaction, savepoint, failedBefore, messages, fetchedAt, afterCommit, outcomes));
        Interlocked.Add(ref _processed, handled);
        Interlocked.Add(ref _deadLettered, deadLettered);
        metrics.RecordBatch(Stopwatch.GetElapsedTime(started), batch.Count, outcomes.Select(o => (o.Key, o.Value)));
        foreach (var action in afterCommit.Distinct())
        {
            action();
        }
    }

    /// <param name="savepoint">Null in the batch's first run; then a handler that fails throws
    /// <see cref="SavepointsNeededException"/> naming its event.</param>
    /// <param name="failedBefore">In the second run, what failed in the first.</param>
    private async Task<(int Handled, int DeadLettered)> HandleBatchAsync(
        DbTransaction transaction,
        Savepoint? savepoint,
        SavepointsNeededException? failedBefore,
        List<IncomingMessage> messages,
        DateTimeOffset fetchedAt,
        List<Action> afterCommit,
        Dictionary<(string Topic, string Type, string Outcome), int> outcomes)
    {
        afterCommit.Clear();
        outcomes.Clear();
        var fresh = await MarkProcessedAsync(transaction, [.. messages.Where(m => m.HasHandlers && m.Poison is null).Select(m => m.Event!.Id)]);
        var outcome = (Handled: 0, DeadLettered: 0);
        async Task HandleOneAsync(IncomingMessage message)
        {
            var handled = await HandleWithRetriesAsync(transaction, savepoint, failedBefore, message, fetchedAt, afterCommit);
            outcome.Handled += handled ? 1 : 0;
            outcome.DeadLettered += handled ? 0 : 1;
            Count(outcomes, message, handled ? "handled" : "dead_lettered");
        }

        var allAtOnce = new List<(IncomingMessage Message, ConsumedEvent Event)>();
        foreach (var message in messages)
        {
            if (message.Poison is { } poison)
            {
                await DeadLetterAsync(transaction, message, poison, attempts: 1);
                outcome.DeadLettered++;
                Count(outcomes, message, "dead_lettered");
            }
            else if (message.HasHandlers && fresh.Remove(message.Event!.Id))
            {
                if (registration.BatchHandlers.Count > 0 && TryConsume(message) is { } consumed)
                {
                    allAtOnce.Add((message, consumed));
                }
                else
                {
                    await HandleOneAsync(message);
                }
            }
            else if (message.HasHandlers)
            {
                Count(outcomes, message, "duplicate");
            }
        }

        // The batch handlers failed in the first run: this time the events go one at a time.
        var batchHandlersFailed = failedBefore is { FailedPiece: null };
        if (allAtOnce.Count > 0 && !batchHandlersFailed && await HandleAllAtOnceAsync(transaction, savepoint, allAtOnce.ConvertAll(m => m.Event)))
        {
            outcome.Handled += allAtOnce.Count;
            allAtOnce.ForEach(m => Count(outcomes, m.Message, "handled"));
        }
        else
        {
            foreach (var (message, _) in allAtOnce)
            {
                await HandleOneAsync(message);
            }
        }

        return outcome;
    }

    private static void Count(Dictionary<(string, string, string), int> outcomes, IncomingMessage message, string outcome)
    {
        var key = (message.Topic, message.Event?.Type ?? "unreadable", outcome);
        outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
    }

    private IncomingMessage Read(ConsumeResult<byte[], byte[]> result)
    {
        var topic = options.LogicalTopicName(result.Topic);
        if (registration.BatchHandlers.Count == 0
            && EventSerializer.PeekType(result.Message.Value) is { } type
            && EventCatalog.Find(type) is { } known
            && registration.HandlersOf(known.TypeName).Count == 0)
        {
            // A known event this service has no business with (Payments reads OrderPlaced on
            // book-orders, say): passed over without being parsed, neither handled nor recorded.
            return new IncomingMessage(result, topic, null, known, [], null);
        }

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
                HasHandlers = handlers.Count > 0 || registration.BatchHandlers.Count > 0,
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
    private IncomingMessage RefuseIfTooOld(IncomingMessage message, DateTimeOffset rememberedSince)
    {
        if (message is not { Poison: null, HasHandlers: true, Event: { } cloudEvent } || CompactedTopics.Contains(message.Topic))
        {
            return message;
        }

        return cloudEvent.Time >= rememberedSince
            ? message
            : message with
            {
                Poison = new PoisonMessageException(
                    $"Written at {cloudEvent.Time:O}, before the {_rememberedFor} for which this service remembers the events it handled: it cannot tell whether this one was, so it does not apply it."),
            };
    }

    /// <summary>True when handled; false when it failed every attempt and was dead-lettered
    /// (it stays recorded as processed: the dead letter is its outcome). Without a savepoint (the
    /// batch's first run), a failure throws <see cref="SavepointsNeededException"/> instead: one
    /// attempt, counted when the batch runs again.</summary>
    private async Task<bool> HandleWithRetriesAsync(DbTransaction transaction, Savepoint? savepoint, SavepointsNeededException? failedBefore, IncomingMessage message, DateTimeOffset fetchedAt, List<Action> afterCommit)
    {
        var cloudEvent = message.Event!;
        var started = Stopwatch.GetTimestamp();
        using var span = MessagingTelemetry.StartProcess(cloudEvent, message.Topic, message.Result.Partition.Value, message.Result.Offset.Value, options.GroupId);
        using var cause = EventCause.Enter(new EventCause(cloudEvent.Id, fetchedAt, span?.Id ?? cloudEvent.TraceParent));
        var attempts = failedBefore?.FailedPiece == cloudEvent.Id ? 1 : 0;
        Exception? failure = null;
        if (savepoint is null)
        {
            try
            {
                await InvokeHandlersAsync(transaction, message, afterCommit);
            }
            catch (Exception e) when (e is not OperationCanceledException && !ServiceDatabase.IsUnavailable(e))
            {
                MessagingTelemetry.Fail(span, e);
                throw new SavepointsNeededException(e, cloudEvent.Id);
            }
        }
        else if (attempts == 1 && (!IsRetried(failedBefore!.Failure) || options.MaxAttempts <= 1))
        {
            // Its one attempt was the first run's.
            failure = failedBefore.Failure;
        }
        else
        {
            try
            {
                await (attempts == 0 ? _messageRetry : _messageRetryAfterFirstAttempt).ExecuteAsync(
                    async _ =>
                    {
                        attempts++;
                        savepoint.Begin();
                        try
                        {
                            await InvokeHandlersAsync(transaction, message, afterCommit);
                            savepoint.Release();
                        }
                        catch
                        {
                            savepoint.Undo();
                            throw;
                        }
                    },
                    CancellationToken.None);
            }
            catch (Exception e) when (e is not OperationCanceledException && !ServiceDatabase.IsUnavailable(e))
            {
                failure = e;
            }
        }

        metrics.RecordProcess(Stopwatch.GetElapsedTime(started), message.Topic, cloudEvent.Type, failed: failure is not null);
        if (failure is null)
        {
            return true;
        }

        MessagingTelemetry.Fail(span, failure);
        await DeadLetterAsync(transaction, message, failure, attempts);
        return false;
    }

    private async Task InvokeHandlersAsync(DbTransaction transaction, IncomingMessage message, List<Action> afterCommit)
    {
        var (cloudEvent, definition) = (message.Event!, message.Definition!);
        var data = EventSerializer.ReadData(cloudEvent, definition);
        var context = new EventContext(transaction, outbox, afterCommit)
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

        if (registration.BatchHandlers.Count > 0)
        {
            await InvokeBatchHandlersAsync(transaction, [Consumed(message, data)]);
        }
    }

    private async Task InvokeBatchHandlersAsync(DbTransaction transaction, IReadOnlyList<ConsumedEvent> events)
    {
        foreach (var type in registration.BatchHandlers)
        {
            await ((IEventBatchHandler)services.GetRequiredService(type)).HandleAsync(transaction, events, CancellationToken.None);
        }
    }

    /// <summary>The event with its data, for the batch handlers; null when its data cannot be read
    /// (it is then handled alone, and dead-lettered).</summary>
    private static ConsumedEvent? TryConsume(IncomingMessage message)
    {
        try
        {
            return Consumed(message, EventSerializer.ReadData(message.Event!, message.Definition!));
        }
        catch (PoisonMessageException)
        {
            return null;
        }
    }

    private static ConsumedEvent Consumed(IncomingMessage message, object data) =>
        new(message.Event!, message.Definition!, data, message.Topic, message.Result.Partition.Value, message.Result.Offset.Value);

    /// <summary>The batch handlers given the batch's new events at once. When they fail, the events
    /// are handled one at a time, so that only one that fails every attempt is dead-lettered: false,
    /// and undone, in a savepoint; without one (the batch's first run),
    /// <see cref="SavepointsNeededException"/>.</summary>
    private async Task<bool> HandleAllAtOnceAsync(DbTransaction transaction, Savepoint? savepoint, List<ConsumedEvent> events)
    {
        var started = Stopwatch.GetTimestamp();
        // Each event's span, a child of the span that wrote it, covers the batch that handles it.
        var outer = Activity.Current;
        var spans = new List<Activity>(events.Count);
        foreach (var e in events)
        {
            if (MessagingTelemetry.StartProcess(e.Event, e.Topic, e.Partition, e.Offset, options.GroupId) is { } span)
            {
                spans.Add(span);
            }

            Activity.Current = outer;
        }

        savepoint?.Begin();
        try
        {
            await InvokeBatchHandlersAsync(transaction, events);
            savepoint?.Release();
        }
        catch (Exception e) when (e is not OperationCanceledException && !ServiceDatabase.IsUnavailable(e))
        {
            savepoint?.Undo();
            spans.ForEach(span => MessagingTelemetry.Fail(span, e));
            LogAllAtOnceFailed(e, options.GroupId, events.Count);
            return savepoint is null ? throw new SavepointsNeededException(e) : false;
        }
        finally
        {
            spans.ForEach(span => span.Dispose());
            Activity.Current = outer;
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        foreach (var e in events)
        {
            metrics.RecordProcess(elapsed, e.Topic, e.Event.Type, failed: false);
        }

        return true;
    }

    /// <summary>Records the event ids with one statement (the batch as its one parameter);
    /// returns those recorded now, i.e. not processed before.</summary>
    private async Task<HashSet<string>> MarkProcessedAsync(DbTransaction transaction, IReadOnlyList<string> eventIds)
    {
        if (eventIds.Count == 0)
        {
            return [];
        }

        var recorded = await transaction.Connection!.QueryAsync<string>(
            $"INSERT INTO processed_events (event_id, processed_at) SELECT value, @at FROM {database.Sql.Values("@ids")} WHERE true ON CONFLICT DO NOTHING RETURNING event_id",
            new { ids = database.Sql.List(eventIds), at = DateTimeOffset.UtcNow.ToString("O") },
            transaction);
        return new HashSet<string>(recorded, StringComparer.Ordinal);
    }

    private async Task DeadLetterAsync(DbTransaction transaction, IncomingMessage message, Exception error, int attempts)
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Group {Group}: a batch of {Count} failed as a whole; retrying it")]
    private partial void LogBatchFailed(Exception exception, string group, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: handling {Count} events at once failed; handling them one at a time")]
    private partial void LogAllAtOnceFailed(Exception exception, string group, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The dead letter of {Topic}/{Partition}@{Offset} carries only the start of its {Bytes}-byte value (too large to publish whole); the original stays at that offset")]
    private partial void LogDeadLetterTruncated(string topic, int partition, long offset, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead-lettered {Topic}/{Partition}@{Offset} of group {Group} after {Attempts} attempt(s): {Error}")]
    private partial void LogDeadLettered(string topic, int partition, long offset, string group, int attempts, string error);
}
