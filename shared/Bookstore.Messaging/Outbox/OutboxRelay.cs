using System.Text.Json;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Telemetry;
using System.Diagnostics;
using Confluent.Kafka;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Outbox;

/// <summary>Publishes committed outbox rows, removes them once the brokers acknowledged them, and
/// picks up where it stopped after a crash (a row is removed only after its delivery report, so a
/// crash in between publishes it again: consumers deduplicate).</summary>
/// <remarks>
/// <para>Order: a round publishes only the oldest waiting row of each key, so a row that fails is
/// retried before any later row of its key is sent. Rows of different keys never wait for each other.</para>
/// <para>Failures: a transient one (broker unreachable, timed out) leaves the row for the next
/// round; a permanent one (too large, refused for good) parks it: the row moves to
/// <c>outbox_parked</c>, where <c>GET /outbox</c>, <c>./bookstore status</c> and the log show it,
/// and the relay moves on. A permanent error in a delivery report may be a batch-mate's, so the
/// row is first retried alone and parked only if it fails again.</para>
/// <para>One relay per database publishes: the holder of <see cref="RelayLease"/>. It renews the
/// lease while it waits for delivery reports and, if it cannot before the lease runs out, drops
/// what its client still queues and stops, so that a standby taking over publishes alone.</para>
/// </remarks>
public sealed partial class OutboxRelay(
    ServiceDatabase database,
    KafkaProducer producer,
    OutboxSignal signal,
    MessagingOptions options,
    MessagingMetrics metrics,
    ILogger<OutboxRelay> logger) : BackgroundLoop
{
    // On 0.9 the producer keeps one request in flight per broker (ordering without idempotence),
    // so throughput is rows per round trip: 10,000 rows measured 31k records/s here, 2,000 about 17k.
    private const int BatchSize = 10_000;
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);
    private readonly RelayLease _lease = new(database, options.OutboxLeaseDuration);

    // Rows whose delivery failed with a permanent error, to be retried alone. In memory: after a
    // restart they fail in a batch once more and come back here.
    private readonly HashSet<long> _suspects = [];
    private long _published;
    private long _parked;

    public long Published => Interlocked.Read(ref _published);

    /// <summary>Rows this relay parked since it started.</summary>
    public long Parked => Interlocked.Read(ref _parked);

    /// <summary>True while this relay holds the lease (it is the one publishing).</summary>
    public bool IsActive => _lease.IsValid;

    internal string LeaseOwner => _lease.Owner;

    /// <summary>A stand-in for a slow delivery, for fault tests: awaited, with the delivery
    /// reports, after a round's records were handed to the client.</summary>
    internal Func<CancellationToken, Task>? AwaitingDeliveries { get; set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!_lease.IsValid || _lease.IsDueForRenewal)
                {
                    var wasActive = _lease.IsValid;
                    var active = await _lease.AcquireOrRenewAsync(stoppingToken);
                    if (active != wasActive)
                    {
                        LogLease(active ? "holds" : "lost", options.ServiceName);
                    }

                    if (!active)
                    {
                        await signal.WaitAsync(_lease.Duration / 4, stoppingToken);
                        continue;
                    }
                }

                var round = await PublishRoundAsync(stoppingToken);
                if (round.Retry)
                {
                    await Task.Delay(RetryDelay, stoppingToken);
                }
                else if (round.Rows == 0)
                {
                    await signal.WaitAsync(IdlePoll, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
#pragma warning disable CA1031 // A failed round is tried again, whatever failed: rows stay until their delivery is recorded, so nothing is lost by retrying.
            catch (Exception e)
#pragma warning restore CA1031
            {
                LogRelayError(e);
                await Task.Delay(RetryDelay, stoppingToken);
            }
        }

        try
        {
            await _lease.ReleaseAsync();
        }
        catch (System.Data.Common.DbException e)
        {
            LogRelayError(e);
        }
    }

    /// <summary>One round: the oldest waiting row of each key (or, when some failed for good in a
    /// delivery report, those alone, one at a time), then the outcome recorded in one transaction.</summary>
    private async Task<(int Rows, bool Retry)> PublishRoundAsync(CancellationToken cancellationToken)
    {
        var waiting = await ReadOldestAsync(cancellationToken);
        if (waiting.Count == 0)
        {
            return (0, false);
        }

        var suspects = waiting.Where(r => _suspects.Contains(r.Seq)).ToList();
        List<Delivery> outcomes = [];
        if (suspects.Count > 0)
        {
            foreach (var suspect in suspects)
            {
                var alone = await PublishAsync([suspect], cancellationToken);
                outcomes.AddRange(alone);
                if (alone[0].Result is DeliveryResult.NotSent)
                {
                    break;
                }
            }
        }
        else
        {
            outcomes = await PublishInLayersAsync(waiting, cancellationToken);
        }

        await RecordAsync(outcomes, cancellationToken);
        return (outcomes.Count, outcomes.Any(o => o.Result is DeliveryResult.Failed or DeliveryResult.NotSent));
    }

    private async Task<List<OutboxRow>> ReadOldestAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return [.. await connection.QueryAsync<OutboxRow>(
            "SELECT seq AS Seq, event_id AS EventId, topic AS Topic, key AS Key, value AS Value FROM outbox ORDER BY seq LIMIT @BatchSize",
            new { BatchSize })];
    }

    /// <summary>The rows in layers: the oldest waiting row of each key, then, once those are
    /// acknowledged, the next row of each key, and so on. A key's later rows are sent only after
    /// every earlier row of it was acknowledged, so a failed row is never overtaken; keys whose row
    /// failed wait for the next round, and a round with a failure ends there.</summary>
    private async Task<List<Delivery>> PublishInLayersAsync(List<OutboxRow> rows, CancellationToken cancellationToken)
    {
        var keys = rows.GroupBy(r => (r.Topic, r.Key)).Select(g => g.ToList()).ToList();
        var outcomes = new List<Delivery>(rows.Count);
        for (var depth = 0; ; depth++)
        {
            var layer = keys.Where(k => k.Count > depth).Select(k => k[depth]).OrderBy(r => r.Seq).ToList();
            if (layer.Count == 0)
            {
                return outcomes;
            }

            var published = await PublishAsync(layer, cancellationToken);
            outcomes.AddRange(published);
            if (published.Any(o => o.Result is not DeliveryResult.Delivered))
            {
                return outcomes;
            }
        }
    }

    /// <summary>Hands every row to the client, then waits for all delivery reports while keeping
    /// the lease; the outcome of each row, in order.</summary>
    private async Task<List<Delivery>> PublishAsync(List<OutboxRow> rows, CancellationToken cancellationToken)
    {
        var outcomes = rows.Select(r => new Delivery(r)).ToList();
        var pending = rows.Count + 1;
        var reported = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Settled()
        {
            if (Interlocked.Decrement(ref pending) == 0)
            {
                reported.TrySetResult();
            }
        }

        var client = producer.Producer;
        // One time for the rows handed over together: they leave in the same few microseconds.
        var handedOverAt = DateTimeOffset.UtcNow;
        var handedOver = Stopwatch.GetTimestamp();
        var publishedAt = PublishedAtAttribute(handedOverAt);
        var tracing = MessagingTelemetry.RelaySource.HasListeners();
        for (var i = 0; i < rows.Count; i++)
        {
            var outcome = outcomes[i];
            if (i % 1000 == 0 && !_lease.IsValid)
            {
                // The rest stays for whoever holds the lease next.
                for (var j = i; j < rows.Count; j++)
                {
                    Settled();
                }

                break;
            }

            var row = rows[i];
            var message = new Message<string, string>
            {
                Key = row.Key,
                Value = Stamp(row.Value, publishedAt),
                Headers = ContentTypeHeader.For(producer.Capabilities, row.Topic),
            };
            void OnDelivery(DeliveryReport<string, string> report)
            {
                outcome.Report(report.Error);
                metrics.RecordPublishDuration(row.Topic, Stopwatch.GetElapsedTime(handedOver));
                if (tracing)
                {
                    MessagingTelemetry.RecordPublish(
                        row.Topic, row.Key, row.EventId, TraceParentOf(row.Value), handedOverAt,
                        report.Partition.Value, report.Offset.Value, report.Error.IsError ? report.Error.Reason : null);
                }

                Settled();
            }

            outcome.Result = DeliveryResult.InFlight;
            while (true)
            {
                try
                {
                    client.Produce(options.TopicName(row.Topic), message, OnDelivery);
                    break;
                }
                catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    // The client's buffer is full: let deliveries drain it.
                    client.Poll(TimeSpan.FromMilliseconds(50));
                }
                catch (ProduceException<string, string> e)
                {
                    // Refused before sending: nothing of it went out, so there is no batch-mate to blame.
                    outcome.Refuse(e.Error);
                    Settled();
                    break;
                }
            }
        }

        Settled();
        if (!await AwaitDeliveriesAsync(reported.Task, cancellationToken))
        {
            LogLeaseLostInFlight(options.ServiceName, outcomes.Count(o => o.Result is DeliveryResult.InFlight));
            producer.Abandon();
            foreach (var outcome in outcomes.Where(o => o.Result is DeliveryResult.InFlight))
            {
                outcome.Result = DeliveryResult.NotSent;
            }
        }

        return outcomes;
    }

    /// <summary>The CloudEvent attribute saying when the relay handed the record to Kafka: 0.9
    /// records carry no timestamp, and an order's journey needs this boundary as it happened.</summary>
    internal static string PublishedAtAttribute(DateTimeOffset at) =>
        $",\"publishedat\":\"{at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture)}\"}}";

    /// <summary>A CloudEvent (as <see cref="EventSerializer"/> writes it) with <paramref name="publishedAt"/>
    /// added as its last attribute; any other row (a dead letter, a notice) as it is.</summary>
    internal static string Stamp(string value, string publishedAt) =>
        value.StartsWith("{\"specversion\":", StringComparison.Ordinal) && value.EndsWith('}')
            ? string.Concat(value.AsSpan(0, value.Length - 1), publishedAt)
            : value;

    /// <summary>The traceparent a CloudEvent row carries, found without parsing the whole event.</summary>
    private static string? TraceParentOf(string value)
    {
        const string Attribute = "\"traceparent\":\"";
        var start = value.IndexOf(Attribute, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        start += Attribute.Length;
        var end = value.IndexOf('"', start);
        return end > start ? value[start..end] : null;
    }

    /// <summary>True once every report is in; false when the lease could not be kept meanwhile.</summary>
    private async Task<bool> AwaitDeliveriesAsync(Task reported, CancellationToken cancellationToken)
    {
        var waiting = AwaitingDeliveries is { } hook ? Task.WhenAll(reported, hook(cancellationToken)) : reported;
        var tick = _lease.Duration / 20;
        Task<bool>? renewal = null;
        while (!waiting.IsCompleted)
        {
            if (renewal is null && _lease.IsDueForRenewal)
            {
                renewal = _lease.AcquireOrRenewAsync(cancellationToken);
            }

            await Task.WhenAny(waiting, Task.Delay(tick, cancellationToken));
            if (renewal is { IsCompleted: true })
            {
                await renewal;
                renewal = null;
            }

            if (!_lease.IsValid && !waiting.IsCompleted)
            {
                return false;
            }
        }

        if (renewal is not null)
        {
            await renewal;
        }

        await waiting;
        return true;
    }

    /// <summary>Removes what was delivered and parks what failed for good, in one transaction.</summary>
    private async Task RecordAsync(List<Delivery> outcomes, CancellationToken cancellationToken)
    {
        var delivered = outcomes.Where(o => o.Result is DeliveryResult.Delivered).Select(o => o.Row.Seq).ToList();
        var parked = new List<Delivery>();
        foreach (var outcome in outcomes.Where(o => o.Result is DeliveryResult.Failed && o.Permanent))
        {
            if (outcome.RefusedBeforeSending || _suspects.Contains(outcome.Row.Seq))
            {
                parked.Add(outcome);
            }
            else
            {
                _suspects.Add(outcome.Row.Seq);
            }
        }

        if (delivered.Count > 0 || parked.Count > 0)
        {
            var at = DateTimeOffset.UtcNow;
            await database.WriteAsync(
                async t =>
                {
                    foreach (var (row, error) in parked.Select(p => (p.Row, p.Error!)))
                    {
                        var size = System.Text.Encoding.UTF8.GetByteCount(row.Value);
                        await t.Connection!.ExecuteAsync(
                            """
                            INSERT INTO outbox_parked (seq, event_id, topic, key, value, value_bytes, error, parked_at)
                            SELECT seq, event_id, topic, key, value, @size, @Error, @at FROM outbox WHERE seq = @Seq
                            ON CONFLICT (seq) DO UPDATE SET value_bytes = excluded.value_bytes, error = excluded.error, parked_at = excluded.parked_at
                            """,
                            new { row.Seq, size, Error = error.ToString(), at = at.ToString("O") },
                            t);
                        await Outbox.AddRecordAsync(t, ParkedNotice.For(options.ServiceName, row.Seq, row.EventId, row.Topic, row.Key, size, error.ToString(), at));
                    }

                    var removed = delivered.Concat(parked.Select(p => p.Row.Seq)).ToList();
                    await t.Connection!.ExecuteAsync($"DELETE FROM outbox WHERE seq IN (SELECT value FROM {database.Sql.Values("@seqs")})", new { seqs = database.Sql.List(removed) }, t);
                },
                cancellationToken);
        }

        foreach (var outcome in outcomes)
        {
            if (outcome.Result is DeliveryResult.Delivered)
            {
                _suspects.Remove(outcome.Row.Seq);
            }
            else if (outcome.Result is not DeliveryResult.Failed)
            {
                continue;
            }
            else if (parked.Contains(outcome))
            {
                _suspects.Remove(outcome.Row.Seq);
                LogParked(options.ServiceName, outcome.Row.Seq, outcome.Row.EventId, options.TopicName(outcome.Row.Topic), outcome.Row.Key, outcome.Row.Value.Length, outcome.Error!.Reason);
            }
            else
            {
                LogDeliveryFailed(options.TopicName(outcome.Row.Topic), outcome.Row.Key, outcome.Error!.Reason, outcome.Permanent ? "alone" : "before later records of that key");
            }
        }

        Interlocked.Add(ref _published, delivered.Count);
        Interlocked.Add(ref _parked, parked.Count);
        foreach (var topic in outcomes.Where(o => o.Result is DeliveryResult.Delivered).GroupBy(o => o.Row.Topic))
        {
            metrics.RecordPublished(topic.Key, topic.Count());
        }

        foreach (var outcome in parked)
        {
            metrics.RecordParked(outcome.Row.Topic);
        }
    }

    /// <summary>Errors that say this record will never be accepted, however often it is sent.</summary>
    private static bool IsPermanent(Error error) => error.Code is
        ErrorCode.MsgSizeTooLarge or ErrorCode.RecordListTooLarge
        or ErrorCode.InvalidMsg or ErrorCode.InvalidRecord or ErrorCode.Local_BadMsg
        or ErrorCode.Local_InvalidArg or ErrorCode.InvalidRequiredAcks;

    private enum DeliveryResult
    {
        NotSent,
        InFlight,
        Delivered,
        Failed,
    }

    private sealed class Delivery(OutboxRow row)
    {
        public OutboxRow Row { get; } = row;

        public DeliveryResult Result { get; set; } = DeliveryResult.NotSent;

        public Error? Error { get; private set; }

        public bool Permanent => Error is { } error && IsPermanent(error);

        public bool RefusedBeforeSending { get; private set; }

        public void Report(Error error)
        {
            if (Result is not DeliveryResult.InFlight)
            {
                return;
            }

            Error = error.IsError ? error : null;
            Result = error.IsError ? DeliveryResult.Failed : DeliveryResult.Delivered;
        }

        public void Refuse(Error error)
        {
            Error = error;
            RefusedBeforeSending = true;
            Result = DeliveryResult.Failed;
        }
    }

    private sealed record OutboxRow(long Seq, string EventId, string Topic, string Key, string Value);

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox relay {State} the lease of {Service}")]
    private partial void LogLease(string state, string service);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox relay of {Service} could not renew its lease while {Count} record(s) awaited delivery; it dropped what it still queued and stands by")]
    private partial void LogLeaseLostInFlight(string service, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox delivery to {Topic} (key {Key}) failed: {Reason}; retrying it {How}")]
    private partial void LogDeliveryFailed(string topic, string key, string reason, string how);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox of {Service}: parked row {Seq} (event {EventId}, {Topic}, key {Key}, {Length} chars): {Reason}. It is kept in outbox_parked (GET /outbox) and will not be published")]
    private partial void LogParked(string service, long seq, string eventId, string topic, string key, int length, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox relay error; retrying")]
    private partial void LogRelayError(Exception exception);
}
