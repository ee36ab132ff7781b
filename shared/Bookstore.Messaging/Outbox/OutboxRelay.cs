using System.Diagnostics;
using Bookstore.Messaging.Storage;
using Confluent.Kafka;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Outbox;

/// <summary>Publishes committed outbox rows in the order they were written, removes them once the
/// brokers acknowledged them, and picks up where it stopped after a crash (a row is removed only
/// after its delivery report, so a crash in between publishes it again: consumers deduplicate).</summary>
/// <remarks>One relay per database publishes at a time: all instances of a service share the
/// database, and two relays would publish the same rows in parallel. The holder of a lease row is
/// the active one; the others stand by and take over when it stops renewing.</remarks>
public sealed partial class OutboxRelay(
    ServiceDatabase database,
    KafkaProducer producer,
    OutboxSignal signal,
    MessagingOptions options,
    ILogger<OutboxRelay> logger) : BackgroundService
{
    private const int BatchSize = 2000;
    private const int MaxBatchesInFlight = 8;
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);
    private readonly string _owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
    private long _leaseValidUntil;

    /// <summary>Batches handed to the producer whose delivery reports are not all in yet.</summary>
    private readonly Queue<InFlightBatch> _inFlight = new();

    /// <summary>The last sequence number handed to the producer: the next read starts after it,
    /// so the relay keeps producing while earlier batches are still being acknowledged.</summary>
    private long _cursor;

    public long Published { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await HoldLeaseAsync(stoppingToken))
                {
                    await DrainAsync(stoppingToken);
                    await signal.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken);
                    continue;
                }

                var sent = _inFlight.Count < MaxBatchesInFlight ? await SendNextBatchAsync(stoppingToken) : 0;
                if (!await SettleAsync(stoppingToken))
                {
                    await DrainAsync(stoppingToken);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
                else if (sent == 0 && _inFlight.Count == 0)
                {
                    await signal.WaitAsync(IdlePoll, stoppingToken);
                }
                else if (sent == 0)
                {
                    await Task.WhenAny(_inFlight.Peek().Done.Task, signal.WaitAsync(IdlePoll, stoppingToken));
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or KafkaException)
            {
                LogRelayError(e);
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            }
        }

        await DrainAsync(CancellationToken.None, patience: TimeSpan.FromSeconds(10));
        await ReleaseLeaseAsync();
    }

    /// <summary>Hands the next committed rows to the producer, all at once; returns how many.</summary>
    private async Task<int> SendNextBatchAsync(CancellationToken cancellationToken)
    {
        List<OutboxRow> rows;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            rows = [.. await connection.QueryAsync<OutboxRow>(
                "SELECT seq AS Seq, topic AS Topic, key AS Key, value AS Value FROM outbox WHERE seq > @cursor ORDER BY seq LIMIT @BatchSize",
                new { cursor = _cursor, BatchSize })];
        }

        if (rows.Count == 0)
        {
            return 0;
        }

        var batch = new InFlightBatch(rows);
        for (var i = 0; i < rows.Count; i++)
        {
            var index = i;
            var message = new Message<string, string> { Key = rows[i].Key, Value = rows[i].Value };
            while (true)
            {
                try
                {
                    producer.Producer.Produce(options.TopicName(rows[i].Topic), message, report => batch.Delivered(index, report.Error));
                    break;
                }
                catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    // The client's buffer is full: let deliveries drain it.
                    producer.Producer.Poll(TimeSpan.FromMilliseconds(50));
                }
            }
        }

        _cursor = rows[^1].Seq;
        _inFlight.Enqueue(batch);
        return rows.Count;
    }

    /// <summary>Removes the rows of the batches acknowledged so far, oldest first. False when a
    /// delivery failed: the rows from the failed one on stay, in order, for the next round.</summary>
    private async Task<bool> SettleAsync(CancellationToken cancellationToken)
    {
        long? delivered = null;
        var ok = true;
        while (_inFlight.TryPeek(out var head) && head.Done.Task.IsCompleted)
        {
            var failed = Array.FindIndex(head.Errors, e => e is not null);
            if (failed >= 0)
            {
                delivered = failed > 0 ? head.Rows[failed - 1].Seq : delivered;
                LogDeliveryFailed(head.Rows[failed].Topic, head.Rows[failed].Key, head.Errors[failed]!.Reason);
                ok = false;
                break;
            }

            delivered = head.Rows[^1].Seq;
            Published += head.Rows.Count;
            _inFlight.Dequeue();
        }

        if (delivered is { } last)
        {
            await database.WriteAsync(t => t.Connection!.ExecuteAsync("DELETE FROM outbox WHERE seq <= @last", new { last }, t), cancellationToken);
        }

        return ok;
    }

    /// <summary>Waits for every batch in flight, removes what was acknowledged, and starts reading
    /// again from the oldest row left (after a failure, or on losing the lease).</summary>
    private async Task DrainAsync(CancellationToken cancellationToken, TimeSpan? patience = null)
    {
        if (_inFlight.Count > 0)
        {
            try
            {
                // Every delivery reports within the producer's message timeout (120 s).
                await Task.WhenAll(_inFlight.Select(b => b.Done.Task)).WaitAsync(patience ?? TimeSpan.FromMinutes(3), cancellationToken);
            }
            catch (TimeoutException)
            {
                // Whatever was not acknowledged is published again from the table.
            }

            await SettleAsync(cancellationToken);
            _inFlight.Clear();
        }

        _cursor = 0;
    }

    private async Task<bool> HoldLeaseAsync(CancellationToken cancellationToken)
    {
        var now = Stopwatch.GetTimestamp();
        if (now < _leaseValidUntil)
        {
            return true;
        }

        var wallNow = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var held = await database.WriteAsync(t => t.Connection!.ExecuteAsync(
            """
            INSERT INTO relay_lease (name, owner, expires_at) VALUES ('outbox', @Owner, @ExpiresAt)
            ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
            WHERE relay_lease.owner = excluded.owner OR relay_lease.expires_at < @Now
            """,
            new { Owner = _owner, ExpiresAt = wallNow + (long)LeaseDuration.TotalMilliseconds, Now = wallNow },
            t), cancellationToken) > 0;
        var wasHolding = _leaseValidUntil > 0;
        // Renew well before expiry, so a standby never sees a lease of a live relay run out.
        _leaseValidUntil = held ? now + (Stopwatch.Frequency * (long)LeaseDuration.TotalSeconds / 3) : 0;
        if (held != wasHolding)
        {
            LogLease(held ? "holds" : "lost", options.ServiceName);
        }

        return held;
    }

    private async Task ReleaseLeaseAsync()
    {
        if (_leaseValidUntil == 0)
        {
            return;
        }

        try
        {
            await database.WriteAsync(t => t.Connection!.ExecuteAsync("DELETE FROM relay_lease WHERE name = 'outbox' AND owner = @Owner", new { Owner = _owner }, t));
        }
        catch (Microsoft.Data.Sqlite.SqliteException e)
        {
            LogRelayError(e);
        }
    }

    private sealed record OutboxRow(long Seq, string Topic, string Key, string Value);

    private sealed class InFlightBatch(List<OutboxRow> rows)
    {
        private int _pending = rows.Count;

        public List<OutboxRow> Rows { get; } = rows;

        public Error?[] Errors { get; } = new Error?[rows.Count];

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Delivered(int index, Error error)
        {
            Errors[index] = error.IsError ? error : null;
            if (Interlocked.Decrement(ref _pending) == 0)
            {
                Done.TrySetResult();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox relay {State} the lease of {Service}")]
    private partial void LogLease(string state, string service);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox delivery to {Topic} (key {Key}) failed: {Reason}; retrying from there")]
    private partial void LogDeliveryFailed(string topic, string key, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox relay error; retrying")]
    private partial void LogRelayError(Exception exception);
}
