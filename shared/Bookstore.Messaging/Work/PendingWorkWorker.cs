using System.Text.Json;
using System.Threading.Channels;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Telemetry;
using Dapper;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Work;

/// <summary>Works off <see cref="PendingWork"/>: claims due rows in batches (one short write
/// transaction), makes their external calls outside any transaction with bounded concurrency, and
/// records the outcomes in batches (another short write transaction, which also publishes through
/// the outbox and removes the rows). A failed call is tried again after a growing delay, until its
/// handler gives it up. A crash anywhere leaves the row, which becomes due again when its claim
/// lease ends: every call must therefore be idempotent.</summary>
public sealed partial class PendingWorkWorker(
    ServiceDatabase database,
    IEnumerable<IPendingWorkHandler> handlers,
    PendingWorkSignal signal,
    Outbox.Outbox outbox,
    PendingWorkOptions options,
    ILogger<PendingWorkWorker> logger) : BackgroundLoop
{
    private readonly string _owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
    private readonly Dictionary<string, IPendingWorkHandler> _handlers = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
    private readonly Channel<Outcome> _outcomes = Channel.CreateUnbounded<Outcome>(new UnboundedChannelOptions { SingleReader = true });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var completing = CompleteLoopAsync();
        using var slots = new SemaphoreSlim(options.MaxConcurrentCalls, options.MaxConcurrentCalls);
        var signalled = true; // at start, rows left by a previous run may be due
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await slots.WaitAsync(stoppingToken);
                var held = 1;
                while (held < options.BatchSize && slots.Wait(0, CancellationToken.None))
                {
                    held++;
                }

                List<WorkItem> claimed;
                try
                {
                    claimed = await ClaimAsync(held, readFirst: !signalled, stoppingToken);
                }
#pragma warning disable CA1031 // A claim that fails (the database, a handler's check) is tried again, whatever the cause.
                catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
                {
                    slots.Release(held);
                    LogClaimFailed(e);
                    await Task.Delay(options.IdlePoll, stoppingToken);
                    continue;
                }

                if (held > claimed.Count)
                {
                    slots.Release(held - claimed.Count);
                }

                // Each call gives back one slot: never more calls than slots taken, whatever the claim returned.
                for (; held < claimed.Count; held++)
                {
                    await slots.WaitAsync(CancellationToken.None);
                }

                foreach (var item in claimed)
                {
                    _ = CallAndReleaseAsync(item, slots, stoppingToken);
                }

                signalled = claimed.Count == held;
                if (claimed.Count < held)
                {
                    // Nothing more is due now: wait for a handler's intent, or poll for retries.
                    signalled = await signal.WaitAsync(options.IdlePoll, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: the calls in flight are cancelled and their rows released below.
        }

        for (var i = 0; i < options.MaxConcurrentCalls; i++)
        {
            await slots.WaitAsync(CancellationToken.None);
        }

        _outcomes.Writer.TryComplete();
        await completing;
    }

    private async Task CallAndReleaseAsync(WorkItem item, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        Outcome outcome;
        var cause = item.Cause();
        var startedAt = DateTimeOffset.UtcNow;
        using var span = MessagingTelemetry.StartWork(item.Kind, cause?.TraceParent, item.Kind, item.Key);
        // What the outcome writes names the event behind the work, when the work was recorded and
        // when this call began, and continues the trace from this span.
        var writing = cause is null ? null : cause with { WorkStartedAt = startedAt, TraceParent = span?.Id ?? cause.TraceParent };
        try
        {
            outcome = new Outcome(item, Succeeded: true, await _handlers[item.Kind].CallAsync(item, stoppingToken), null) { Cause = writing };
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            outcome = new Outcome(item, Succeeded: false, null, null) { Released = true };
        }
#pragma warning disable CA1031 // Any failure of the outside world is retried later, whatever its type.
        catch (Exception e)
#pragma warning restore CA1031
        {
            MessagingTelemetry.Fail(span, e);
            outcome = new Outcome(item, Succeeded: false, null, e.Message) { Cause = writing };
        }
        finally
        {
            slots.Release();
        }

        await _outcomes.Writer.WriteAsync(outcome, CancellationToken.None);
    }

    /// <summary>Claims up to <paramref name="limit"/> due rows of the kinds handled here; rows whose
    /// intent is moot are settled in the same transaction and not returned.</summary>
    /// <param name="readFirst">When polling, a read first, so that the write lock is taken only when
    /// something is due. Not after a signal: the handler's transaction may not have committed yet,
    /// and only a write transaction waits for it.</param>
    private async Task<List<WorkItem>> ClaimAsync(int limit, bool readFirst, CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var kinds = database.Sql.List(_handlers.Keys);
        if (readFirst)
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            if (!await connection.ExecuteScalarAsync<bool>(DueExistsSql, new { now, kinds }))
            {
                return [];
            }
        }

        var (claimed, settled) = await database.WriteAsync(
            async transaction =>
            {
                var rows = await transaction.Connection!.QueryAsync<(string Id, string Kind, string Key, string Payload, long Attempts, long CreatedAt)>(
                    ClaimSql,
                    new { now, kinds, limit, owner = _owner, lease = (long)options.ClaimLease.TotalMilliseconds },
                    transaction);
                var toCall = new List<WorkItem>();
                var settled = 0;
                foreach (var row in rows)
                {
                    var item = new WorkItem(row.Id, row.Kind, row.Key, row.Payload, (int)row.Attempts, DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt));
                    if (await _handlers[item.Kind].ShouldCallAsync(transaction, item))
                    {
                        toCall.Add(item);
                    }
                    else
                    {
                        await DeleteAsync(transaction, item);
                        settled++;
                    }
                }

                return (toCall, settled);
            },
            cancellationToken);
        if (settled > 0)
        {
            outbox.Committed();
        }

        return claimed;
    }

    /// <summary>Records outcomes as they arrive, as many per transaction as are waiting.</summary>
    private async Task CompleteLoopAsync()
    {
        await Task.Yield();
        var reader = _outcomes.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None))
        {
            var batch = new List<Outcome>();
            while (batch.Count < options.BatchSize && reader.TryRead(out var outcome))
            {
                batch.Add(outcome);
            }

            await RecordWithRetriesAsync(batch);
        }
    }

    private async Task RecordWithRetriesAsync(List<Outcome> batch)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await database.WriteWithSavepointsOnFailureAsync("work_outcome", async (transaction, savepoint, _) =>
                {
                    foreach (var outcome in batch)
                    {
                        await RecordAsync(transaction, savepoint, outcome);
                    }

                    return true;
                });
                outbox.Committed();
                return;
            }
#pragma warning disable CA1031 // Recording failed as a whole; what failed decides nothing: retried, then left to lapse.
            catch (Exception e) when (attempt < 10 && e is not OperationCanceledException)
            {
                LogRecordFailed(e, batch.Count);
                await Task.Delay(delay, CancellationToken.None);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
            catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
            {
                // The claims lapse and the rows are worked off again: the calls are idempotent.
                LogRecordAbandoned(e, batch.Count);
                return;
            }
        }
    }

    /// <param name="savepoint">Null in the batch's first run: an outcome whose recording fails
    /// then throws <see cref="SavepointsNeededException"/>, and the batch is recorded again with one.</param>
    private async Task RecordAsync(DbTransaction transaction, Savepoint? savepoint, Outcome outcome)
    {
        var item = outcome.Item;
        // Locked until this transaction ends: another instance cannot claim the row between this
        // check and what is recorded below.
        var owner = await transaction.Connection!.ExecuteScalarAsync<string?>(
            $"SELECT claimed_by FROM pending_work WHERE id = @Id{database.Sql.ForUpdate}", new { item.Id }, transaction);
        if (owner != _owner)
        {
            // Completed or re-claimed by another instance after our lease ran out: it records the outcome.
            LogLostClaim(item.Id);
            return;
        }

        if (outcome.Released)
        {
            await transaction.Connection!.ExecuteAsync("UPDATE pending_work SET claimed_by = NULL, claim_expires_at = 0 WHERE id = @Id", new { item.Id }, transaction);
            return;
        }

        var handler = _handlers[item.Kind];
        var error = outcome.Error;
        using var cause = EventCause.Enter(outcome.Cause);
        if (outcome.Succeeded)
        {
            savepoint?.Begin();
            try
            {
                await handler.CompleteAsync(transaction, item, outcome.Result);
                await DeleteAsync(transaction, item);
                savepoint?.Release();
                return;
            }
            catch (Exception e) when (!ServiceDatabase.IsUnavailable(e))
            {
                if (savepoint is null)
                {
                    throw new SavepointsNeededException(e);
                }

                savepoint.Undo();
                error = $"recording the outcome failed: {e.Message}";
            }
        }

        var failed = item with { Attempts = item.Attempts + 1 };
        LogCallFailed(item.Id, failed.Attempts, error);
        if (await handler.GiveUpAsync(transaction, failed, error ?? "unknown error"))
        {
            LogGaveUp(item.Id, failed.Attempts);
            await DeleteAsync(transaction, item);
            return;
        }

        await transaction.Connection!.ExecuteAsync(
            $"UPDATE pending_work SET attempts = @Attempts, next_attempt_at = {database.Sql.NowMilliseconds} + @backoff, claimed_by = NULL, claim_expires_at = 0, last_error = @error WHERE id = @Id",
            new { failed.Id, failed.Attempts, backoff = (long)Backoff(failed.Attempts).TotalMilliseconds, now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), error },
            transaction);
    }

    private TimeSpan Backoff(int attempts)
    {
        var exponential = options.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempts - 1, 20));
        var capped = Math.Min(exponential, options.MaxRetryDelay.TotalMilliseconds);
        // Jitter, so that instances retrying the same outage do not hit the gateway in step.
        return TimeSpan.FromMilliseconds(capped * (0.8 + (0.4 * Random.Shared.NextDouble())));
    }

    private static Task<int> DeleteAsync(DbTransaction transaction, WorkItem item) =>
        transaction.Connection!.ExecuteAsync("DELETE FROM pending_work WHERE id = @Id", new { item.Id }, transaction);

    // Times are the database's (the server's clock on PostgreSQL): hosts whose clocks differ agree on when a claim lapses.
    private string DueCondition => $"next_attempt_at <= {database.Sql.NowMilliseconds} AND claim_expires_at <= {database.Sql.NowMilliseconds} AND kind IN (SELECT value FROM {database.Sql.Values("@kinds")})";

    private string DueExistsSql => field ??= $"SELECT EXISTS (SELECT 1 FROM pending_work WHERE {DueCondition})";

    // The due rows are chosen once, in a materialized CTE: as a plain IN (subquery), PostgreSQL
    // may evaluate the LIMIT … SKIP LOCKED subquery more than once and claim more rows than asked.
    // The due condition again outside it: PostgreSQL re-checks it on a row that another transaction
    // claimed and committed meanwhile, so the row is not claimed a second time.
    private string ClaimSql => field ??= $"""
        WITH due AS MATERIALIZED (SELECT id FROM pending_work WHERE {DueCondition} ORDER BY next_attempt_at LIMIT @limit{database.Sql.SkipLocked})
        UPDATE pending_work SET claimed_by = @owner, claim_expires_at = {database.Sql.NowMilliseconds} + @lease
        WHERE id IN (SELECT id FROM due)
          AND {DueCondition}
        RETURNING id, kind, key, payload, attempts, created_at
        """;

    private sealed record Outcome(WorkItem Item, bool Succeeded, object? Result, string? Error)
    {
        public bool Released { get; init; }

        public EventCause? Cause { get; init; }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pending work {Id}: attempt {Attempts} failed: {Error}; trying again later")]
    private partial void LogCallFailed(string id, int attempts, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pending work {Id}: given up after {Attempts} attempt(s)")]
    private partial void LogGaveUp(string id, int attempts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Pending work {Id}: our claim lapsed; its current owner records the outcome")]
    private partial void LogLostClaim(string id);

    [LoggerMessage(Level = LogLevel.Error, Message = "Claiming pending work failed; trying again")]
    private partial void LogClaimFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Recording {Count} pending-work outcome(s) failed; trying again")]
    private partial void LogRecordFailed(Exception exception, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Recording {Count} pending-work outcome(s) failed for good; their claims lapse and they are worked off again")]
    private partial void LogRecordAbandoned(Exception exception, int count);
}

public static class PendingWorkExtensions
{
    /// <summary>The worker for the handlers registered as <see cref="IPendingWorkHandler"/>, paced by <paramref name="options"/>.</summary>
    public static IServiceCollection AddPendingWork(this IServiceCollection services, PendingWorkOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton<PendingWorkSignal>();
        services.AddHostedService<PendingWorkWorker>();
        return services;
    }
}
