using System.Text.Json;
using System.Text.Json.Nodes;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Telemetry;
using Dapper;
using System.Data.Common;

namespace Bookstore.Messaging.Work;

/// <summary>An intent recorded by a handler (charge this order, send this email) that needs a call
/// to the outside world. It is written in the handler's transaction and worked off by
/// <see cref="PendingWorkWorker"/> outside any transaction, so no external call ever runs while the
/// database's write lock is held.</summary>
public sealed record WorkItem(string Id, string Kind, string Key, string Payload, int Attempts, DateTimeOffset CreatedAt)
{
    public T Read<T>() => JsonSerializer.Deserialize<T>(Payload, EventSerializer.Options)!;

    /// <summary>The event whose handler recorded the work (its id, when it was fetched, the span
    /// that handled it), kept in the payload beside the intent; null for work recorded otherwise.</summary>
    public EventCause? Cause()
    {
        using var json = JsonDocument.Parse(Payload);
        if (!json.RootElement.TryGetProperty(PendingWork.CauseProperty, out var cause))
        {
            return null;
        }

        return new EventCause(
            cause.GetProperty("eventId").GetString()!,
            cause.GetProperty("fetchedAt").GetDateTimeOffset(),
            cause.TryGetProperty("traceParent", out var parent) ? parent.GetString() : null)
        {
            // created_at is whole milliseconds: the journey needs this boundary as exact as the others.
            WorkQueuedAt = cause.TryGetProperty("queuedAt", out var queued) ? queued.GetDateTimeOffset() : CreatedAt,
        };
    }
}

/// <summary>One row per intent in the service's database. The id is <c>kind:key</c>, so recording
/// the same intent twice (a re-delivery, a race) keeps one. Claims are a lease (owner and expiry)
/// taken in a write transaction that skips rows another one is claiming, so instances sharing the
/// database never claim the same row twice, and the row of a crashed owner becomes due again when its lease ends.</summary>
public static class PendingWork
{
    /// <summary>Add to the service's schema (<c>AddMessaging(name, MyStore.Schema + PendingWork.Schema)</c>).</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS pending_work (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            claimed_by TEXT,
            claim_expires_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS pending_work_due ON pending_work (next_attempt_at);
        """;

    public static string IdOf(string kind, string key) => $"{kind}:{key}";

    /// <summary>Where the payload keeps the event that caused the work: a name no C# property has,
    /// so reading the intent ignores it.</summary>
    internal const string CauseProperty = "$cause";

    /// <summary>Records the intent in <paramref name="transaction"/>; false when it was already recorded.
    /// Call <see cref="PendingWorkSignal.Notify"/> once the transaction committed (a handler:
    /// <c>context.AfterCommit(signal.Notify)</c>): a worker woken earlier may look before the row is
    /// there (on PostgreSQL its claim does not wait for this transaction) and sleep until its next poll.</summary>
    public static async Task<bool> AddAsync<T>(DbTransaction transaction, string kind, string key, T payload)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var at = Storage.SqlDialect.Of(transaction).NowMilliseconds;
        return await transaction.Connection!.ExecuteAsync(
            $"INSERT INTO pending_work (id, kind, key, payload, next_attempt_at, created_at) VALUES (@id, @kind, @key, @payload, {at}, {at}) ON CONFLICT DO NOTHING",
            new { id = IdOf(kind, key), kind, key, payload = Serialize(payload), now },
            transaction) == 1;
    }

    /// <summary>The intent as JSON, with the event being handled (if any) beside it, so the events
    /// the work writes name their cause and the work's span continues the handler's trace.</summary>
    private static string Serialize<T>(T payload)
    {
        if (EventCause.Current is not { } cause || JsonSerializer.SerializeToNode(payload, EventSerializer.Options) is not JsonObject json)
        {
            return JsonSerializer.Serialize(payload, EventSerializer.Options);
        }

        json[CauseProperty] = new JsonObject
        {
            ["eventId"] = cause.EventId,
            ["fetchedAt"] = cause.FetchedAt,
            ["traceParent"] = cause.TraceParent,
            ["queuedAt"] = DateTimeOffset.UtcNow,
        };
        return json.ToJsonString(EventSerializer.Options);
    }

    public static async Task<bool> ExistsAsync(DbTransaction transaction, string kind, string key)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return await transaction.Connection!.ExecuteScalarAsync<bool>(
            "SELECT EXISTS (SELECT 1 FROM pending_work WHERE id = @id)", new { id = IdOf(kind, key) }, transaction);
    }

    /// <summary>What is waiting, oldest first, for operators and tests.</summary>
    public static async Task<List<PendingWorkView>> ListAsync(DbConnection connection, int limit = 500)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var rows = await connection.QueryAsync<(string Id, string Kind, string Key, long Attempts, long NextAttemptAt, string? ClaimedBy, long ClaimExpiresAt, string? LastError, long CreatedAt)>(
            "SELECT id, kind, key, attempts, next_attempt_at, claimed_by, claim_expires_at, last_error, created_at FROM pending_work ORDER BY created_at LIMIT @limit",
            new { limit });
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return [.. rows.Select(r => new PendingWorkView(
            r.Id,
            r.Kind,
            r.Key,
            (int)r.Attempts,
            DateTimeOffset.FromUnixTimeMilliseconds(r.NextAttemptAt),
            r.ClaimExpiresAt > now ? r.ClaimedBy : null,
            r.LastError,
            DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAt)))];
    }
}

public sealed record PendingWorkView(string Id, string Kind, string Key, int Attempts, DateTimeOffset NextAttemptAt, string? ClaimedBy, string? LastError, DateTimeOffset CreatedAt);

/// <summary>Carries out one kind of intent. <see cref="CallAsync"/> runs outside any transaction;
/// the other methods run inside a short write transaction of the worker and publish through the outbox.</summary>
public interface IPendingWorkHandler
{
    string Kind { get; }

    /// <summary>In the claim transaction, before any call: false when the intent is moot (e.g. the
    /// order was cancelled meanwhile) and was settled here; the worker then removes it uncalled.</summary>
    Task<bool> ShouldCallAsync(DbTransaction transaction, WorkItem item);

    /// <summary>The external call, outside any transaction. Throws when it should be tried again
    /// later; must be safe to repeat (a crash after the call and before completion repeats it).</summary>
    Task<object?> CallAsync(WorkItem item, CancellationToken cancellationToken);

    /// <summary>Records the outcome of a successful call (its result from <see cref="CallAsync"/>).</summary>
    Task CompleteAsync(DbTransaction transaction, WorkItem item, object? result);

    /// <summary>After the call failed <see cref="WorkItem.Attempts"/> times (this one included): true
    /// when the intent is given up and was settled here; false to try again after a backoff.</summary>
    Task<bool> GiveUpAsync(DbTransaction transaction, WorkItem item, string lastError);
}

/// <summary>How the worker paces itself; bound from the service's own configuration section
/// (e.g. <c>Payments:RetryDelay</c>) so tests can shorten the times.</summary>
public sealed class PendingWorkOptions
{
    /// <summary>External calls in flight at most, per process.</summary>
    public int MaxConcurrentCalls { get; set; } = 32;

    /// <summary>Rows claimed or completed in one transaction at most.</summary>
    public int BatchSize { get; set; } = 200;

    /// <summary>The wait after a first failure; it doubles per failure up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a claim holds. It must outlast the longest call: after it, another
    /// instance may claim the row and repeat the call (harmless, the calls are idempotent).</summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>When nothing wakes the worker, it looks for due rows (retries, rows of other
    /// instances, expired claims) this often.</summary>
    public TimeSpan IdlePoll { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Wakes the worker when a handler recorded an intent in this process.</summary>
public sealed class PendingWorkSignal : WakeSignal;
