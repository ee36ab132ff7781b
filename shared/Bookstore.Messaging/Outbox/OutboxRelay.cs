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
/// <para>Double-buffered: rows committed while a handover awaits its acknowledgement are handed to
/// the client at once, so they leave in its next request instead of waiting for the earlier
/// round's acknowledgement and bookkeeping. A third handover waits for the first to settle: on
/// 0.9 the client has one request in flight per broker anyway, and a round that gathers what
/// arrives meanwhile keeps the brokers' requests and the database's reads and deletes per round,
/// not per commit.</para>
/// <para>Order: at most one row of a key is in flight, the oldest waiting one, so a row that fails
/// is retried before any later row of its key is sent. Rows of different keys never wait for each other.</para>
/// <para>Failures: a transient one (broker unreachable, timed out) leaves the row, and the relay
/// hands over nothing new for a second; a permanent one (too large, refused for good) parks it:
/// the row moves to <c>outbox_parked</c>, where <c>GET /outbox</c>, <c>./bookstore status</c> and
/// the log show it, and the relay moves on. A permanent error in a delivery report may be a
/// batch-mate's, so the row is first retried alone and parked only if it fails again.</para>
/// <para>One relay per database publishes: the holder of <see cref="RelayLease"/>. It renews the
/// lease while deliveries are awaited and, if it cannot before the lease runs out, drops what its
/// client still queues, so that a standby taking over publishes alone.</para>
/// </remarks>
public sealed partial class OutboxRelay(
    ServiceDatabase database,
    KafkaProducer producer,
    OutboxSignal signal,
    MessagingOptions options,
    MessagingMetrics metrics,
    ILogger<OutboxRelay> logger) : BackgroundService
{
    // Rows in hand at most (in flight, or read and waiting behind an earlier row of their key). On
    // 0.9 the producer keeps one request in flight per broker (ordering without idempotence), so
    // a backlog drains at rows per round trip: 10,000 rows measured 31k records/s here, 2,000 about 17k.
    private const int MaxRowsInHand = 10_000;
    private const int MaxHandoversInFlight = 2;
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);
    private readonly RelayLease _lease = new(database, options.OutboxLeaseDuration);

    // Rows whose delivery failed with a permanent error, to be retried alone. In memory: after a
    // restart they fail in a batch once more and come back here.
    private readonly HashSet<long> _suspects = [];

    // What was handed to the client and is not yet recorded, oldest first; the keys it holds.
    private readonly List<Handover> _inFlight = [];
    private readonly HashSet<(string Topic, string Key)> _busyKeys = [];
    private int _inFlightRows;

    // Rows read but held back behind an earlier row of their key, oldest first: handed over as
    // their keys come free, without reading them again.
    private List<OutboxRow> _heldBack = [];
    private long _holdUntil;
    private long _published;
    private long _parked;

    public long Published => Interlocked.Read(ref _published);

    /// <summary>Rows this relay parked since it started.</summary>
    public long Parked => Interlocked.Read(ref _parked);

    /// <summary>True while this relay holds the lease (it is the one publishing).</summary>
    public bool IsActive => _lease.IsValid;

    internal string LeaseOwner => _lease.Owner;

    /// <summary>A stand-in for a slow delivery, for fault tests: awaited, with the delivery
    /// reports, after a handover's records were given to the client.</summary>
    internal Func<CancellationToken, Task>? AwaitingDeliveries { get; set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var active = await KeepLeaseAsync(stoppingToken);
                if (await RecordSettledAsync(stoppingToken))
                {
                    _holdUntil = Stopwatch.GetTimestamp() + (long)(RetryDelay.TotalSeconds * Stopwatch.Frequency);
                }

                if (!active)
                {
                    await signal.WaitAsync(_lease.Duration / 4, stoppingToken);
                    continue;
                }

                if (Stopwatch.GetTimestamp() < _holdUntil)
                {
                    await signal.WaitAsync(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _holdUntil), stoppingToken);
                    continue;
                }

                if (!await HandOverWaitingAsync(stoppingToken))
                {
                    // Woken by a commit or a settled handover; while rows are in flight, often enough to keep the lease.
                    await signal.WaitAsync(_inFlight.Count > 0 ? _lease.Duration / 20 : IdlePoll, stoppingToken);
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
                _heldBack = [];
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

    /// <summary>Renews the lease when due; true while this relay holds it. Rows in flight when it
    /// ran out are dropped from the client: whoever holds it next publishes them.</summary>
    private async Task<bool> KeepLeaseAsync(CancellationToken cancellationToken)
    {
        var wasActive = _lease.IsValid;
        if (!wasActive && _inFlight.Any(h => !h.IsSettled))
        {
            Abandon(_inFlight);
        }

        if (wasActive && !_lease.IsDueForRenewal)
        {
            return true;
        }

        var active = await _lease.AcquireOrRenewAsync(cancellationToken);
        if (active != wasActive)
        {
            LogLease(active ? "holds" : "lost", options.ServiceName);
        }

        if (!active && _inFlight.Any(h => !h.IsSettled))
        {
            Abandon(_inFlight);
        }

        return active;
    }

    private void Abandon(List<Handover> handovers)
    {
        _heldBack = [];
        var unsettled = handovers.SelectMany(h => h.Outcomes).Where(o => o.Result is DeliveryResult.InFlight).ToList();
        LogLeaseLostInFlight(options.ServiceName, unsettled.Count);
        producer.Abandon();
        foreach (var outcome in unsettled)
        {
            outcome.Result = DeliveryResult.NotSent;
        }

        foreach (var handover in handovers)
        {
            handover.IsAbandoned = true;
        }
    }

    /// <summary>Records every settled handover in one transaction and frees its keys; true when a
    /// row in it was not delivered (to be retried after a pause).</summary>
    private async Task<bool> RecordSettledAsync(CancellationToken cancellationToken)
    {
        if (_inFlight.Count == 0 || !_inFlight.Any(h => h.IsSettled))
        {
            return false;
        }

        var outcomes = new List<Delivery>();
        foreach (var handover in _inFlight.Where(h => h.IsSettled))
        {
            outcomes.AddRange(handover.Outcomes);
            _inFlightRows -= handover.Outcomes.Count;
            foreach (var outcome in handover.Outcomes)
            {
                _busyKeys.Remove((outcome.Row.Topic, outcome.Row.Key));
            }
        }

        _inFlight.RemoveAll(h => h.IsSettled);
        await RecordAsync(outcomes, cancellationToken);
        if (outcomes.Any(o => o.Result is DeliveryResult.Failed or DeliveryResult.NotSent))
        {
            // Read again after the pause: what failed comes first again.
            _heldBack = [];
            return true;
        }

        return false;
    }

    /// <summary>Hands the client the oldest waiting row of every key with nothing in flight (or,
    /// when some failed for good in a delivery report, those alone, one at a time, once nothing
    /// else is in flight); true when more rows wait than could be read.</summary>
    private async Task<bool> HandOverWaitingAsync(CancellationToken cancellationToken)
    {
        if (_inFlight.Count >= MaxHandoversInFlight)
        {
            return false;
        }

        var room = MaxRowsInHand - _inFlightRows - _heldBack.Count;
        List<OutboxRow> read = room > 0 ? await ReadWaitingAsync(room, cancellationToken) : [];
        var waiting = _heldBack.Count == 0 ? read : [.. _heldBack.Concat(read).OrderBy(r => r.Seq)];
        _heldBack = [];
        if (waiting.Count == 0)
        {
            return false;
        }

        if (_suspects.Count > 0 && waiting.Any(r => _suspects.Contains(r.Seq)))
        {
            if (_inFlight.Count == 0)
            {
                await PublishSuspectsAloneAsync(waiting.Where(r => _suspects.Contains(r.Seq)), cancellationToken);
            }

            return false;
        }

        var seen = new HashSet<(string Topic, string Key)>();
        var oldestOfEachKey = new List<OutboxRow>(waiting.Count);
        foreach (var row in waiting)
        {
            if (seen.Add((row.Topic, row.Key)) && !_busyKeys.Contains((row.Topic, row.Key)))
            {
                oldestOfEachKey.Add(row);
            }
            else
            {
                _heldBack.Add(row);
            }
        }

        if (oldestOfEachKey.Count > 0)
        {
            _inFlight.Add(HandOver(oldestOfEachKey, cancellationToken));
            _inFlightRows += oldestOfEachKey.Count;
            _busyKeys.UnionWith(oldestOfEachKey.Select(r => (r.Topic, r.Key)));
        }

        return read.Count == room && _heldBack.Count == 0;
    }

    private async Task PublishSuspectsAloneAsync(IEnumerable<OutboxRow> suspects, CancellationToken cancellationToken)
    {
        List<Delivery> outcomes = [];
        foreach (var suspect in suspects)
        {
            var alone = HandOver([suspect], cancellationToken);
            if (!await AwaitDeliveriesAsync(alone.Settled, cancellationToken))
            {
                Abandon([alone]);
            }

            outcomes.AddRange(alone.Outcomes);
            if (alone.Outcomes[0].Result is DeliveryResult.NotSent)
            {
                break;
            }
        }

        await RecordAsync(outcomes, cancellationToken);
        if (outcomes.Any(o => o.Result is DeliveryResult.Failed or DeliveryResult.NotSent))
        {
            _holdUntil = Stopwatch.GetTimestamp() + (long)(RetryDelay.TotalSeconds * Stopwatch.Frequency);
        }
    }

    /// <summary>The oldest rows not already in hand. While rows are held back, only rows after the
    /// newest one in hand: on PostgreSQL a row whose transaction took its seq earlier but committed
    /// later is then read once nothing is held back (later, never lost).</summary>
    private async Task<List<OutboxRow>> ReadWaitingAsync(int limit, CancellationToken cancellationToken)
    {
        const string Columns = "seq AS Seq, event_id AS EventId, topic AS Topic, key AS Key, value AS Value";
        await using var connection = await database.OpenAsync(cancellationToken);
        if (_inFlight.Count == 0 && _heldBack.Count == 0)
        {
            return [.. await connection.QueryAsync<OutboxRow>($"SELECT {Columns} FROM outbox ORDER BY seq LIMIT @limit", new { limit })];
        }

        if (_heldBack.Count > 0)
        {
            var after = Math.Max(_heldBack[^1].Seq, _inFlight.SelectMany(h => h.Outcomes).Max(o => (long?)o.Row.Seq) ?? 0);
            return [.. await connection.QueryAsync<OutboxRow>($"SELECT {Columns} FROM outbox WHERE seq > @after ORDER BY seq LIMIT @limit", new { after, limit })];
        }

        var inFlight = _inFlight.SelectMany(h => h.Outcomes).Select(o => o.Row.Seq).ToList();
        return [.. await connection.QueryAsync<OutboxRow>(
            $"SELECT {Columns} FROM outbox WHERE seq NOT IN (SELECT value FROM {database.Sql.Values("@inFlight")}) ORDER BY seq LIMIT @limit",
            new { limit, inFlight = database.Sql.List(inFlight) })];
    }

    /// <summary>Hands every row to the client; the handover is settled once every delivery report
    /// is in, and it wakes the relay then.</summary>
    private Handover HandOver(List<OutboxRow> rows, CancellationToken cancellationToken)
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
        var settled = AwaitingDeliveries is { } hook ? Task.WhenAll(reported.Task, hook(cancellationToken)) : reported.Task;
        _ = settled.ContinueWith(_ => signal.Notify(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return new Handover(outcomes, settled);
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

    /// <summary>True once <paramref name="settled"/> is; false when the lease could not be kept meanwhile.</summary>
    private async Task<bool> AwaitDeliveriesAsync(Task settled, CancellationToken cancellationToken)
    {
        var tick = _lease.Duration / 20;
        Task<bool>? renewal = null;
        while (!settled.IsCompleted)
        {
            if (renewal is null && _lease.IsDueForRenewal)
            {
                renewal = _lease.AcquireOrRenewAsync(cancellationToken);
            }

            await Task.WhenAny(settled, Task.Delay(tick, cancellationToken));
            if (renewal is { IsCompleted: true })
            {
                await renewal;
                renewal = null;
            }

            if (!_lease.IsValid && !settled.IsCompleted)
            {
                return false;
            }
        }

        if (renewal is not null)
        {
            await renewal;
        }

        await settled;
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

    /// <summary>Rows handed to the client together; settled once every delivery report is in (or
    /// abandoned with the client when the lease ran out).</summary>
    private sealed class Handover(List<Delivery> outcomes, Task settled)
    {
        public List<Delivery> Outcomes { get; } = outcomes;

        public Task Settled { get; } = settled;

        public bool IsAbandoned { get; set; }

        public bool IsSettled => IsAbandoned || Settled.IsCompleted;
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
