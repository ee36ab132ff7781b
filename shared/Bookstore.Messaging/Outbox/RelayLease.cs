using System.Diagnostics;
using Bookstore.Messaging.Storage;
using Dapper;

namespace Bookstore.Messaging.Outbox;

/// <summary>The row that makes one relay per database the active one. The holder renews it at a
/// third of its duration; it counts itself as holding only until the expiry it last wrote minus a
/// margin (measured from before that write), so it stops publishing before a standby may start.</summary>
/// <remarks>Kafka 0.9 cannot fence a producer: this is the relay's own discipline. Its clock for
/// the deadline is monotonic; the row's expiry is the database's time (the server's clock on
/// PostgreSQL, so that relays on hosts whose clocks differ still agree), compared by the standbys.</remarks>
public sealed class RelayLease(ServiceDatabase database, TimeSpan duration)
{
    private readonly string _owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    /// <summary>Who this relay is in the lease row.</summary>
    public string Owner => _owner;
    private readonly TimeSpan _margin = duration / 5;
    private long _validUntil;
    private long _renewAfter;

    public TimeSpan Duration => duration;

    /// <summary>Held, and far enough from expiry to publish.</summary>
    public bool IsValid => Stopwatch.GetTimestamp() < Volatile.Read(ref _validUntil);

    /// <summary>Time to renew (a third of the duration has passed since the last renewal).</summary>
    public bool IsDueForRenewal => Stopwatch.GetTimestamp() >= Volatile.Read(ref _renewAfter);

    /// <summary>When the next renewal is due, from now.</summary>
    public TimeSpan UntilRenewal => Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), Volatile.Read(ref _renewAfter)) is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;

    /// <summary>Takes the lease if it is free or expired, or renews it if this relay holds it.
    /// A write that cannot finish before the current deadline counts as a failed renewal.</summary>
    public async Task<bool> AcquireOrRenewAsync(CancellationToken cancellationToken)
    {
        var startedAt = Stopwatch.GetTimestamp();
        var wallNow = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (IsValid)
        {
            deadline.CancelAfter(Stopwatch.GetElapsedTime(startedAt, Volatile.Read(ref _validUntil)));
        }

        bool held;
        try
        {
            held = await database.WriteAsync(
                t => t.Connection!.ExecuteAsync(
                    $"""
                    INSERT INTO relay_lease (name, owner, expires_at) VALUES ('outbox', @Owner, {database.Sql.NowMilliseconds} + @Duration)
                    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                    WHERE relay_lease.owner = excluded.owner OR relay_lease.expires_at < {database.Sql.NowMilliseconds}
                    """,
                    new { Owner = _owner, Duration = (long)duration.TotalMilliseconds, now = wallNow },
                    t),
                deadline.Token) > 0;
        }
#pragma warning disable CA1031 // Whatever the client throws once the deadline cancelled the write (on PostgreSQL a cancelled command may also break its connection), the renewal failed.
        catch (Exception) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
#pragma warning restore CA1031
        {
            held = false;
        }

        if (held)
        {
            Volatile.Write(ref _validUntil, startedAt + ToTicks(duration - _margin));
            Volatile.Write(ref _renewAfter, startedAt + ToTicks(duration / 3));
        }
        else
        {
            Volatile.Write(ref _validUntil, 0);
            Volatile.Write(ref _renewAfter, 0);
        }

        return held;
    }

    /// <summary>Lets a standby take over at once (a graceful stop).</summary>
    public async Task ReleaseAsync()
    {
        if (Volatile.Read(ref _validUntil) == 0)
        {
            return;
        }

        Volatile.Write(ref _validUntil, 0);
        await database.WriteAsync(t => t.Connection!.ExecuteAsync(
            "DELETE FROM relay_lease WHERE name = 'outbox' AND owner = @Owner", new { Owner = _owner }, t));
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
