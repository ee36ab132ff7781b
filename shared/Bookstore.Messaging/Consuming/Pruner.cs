using Bookstore.Contracts;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Consuming;

/// <summary>One kind of record a service prunes by age (registered with
/// <see cref="ConsumerRegistration.Prune{TStep}"/>); the <see cref="Pruner"/> runs every step.</summary>
public interface IPruneStep
{
    /// <summary>Its key under <c>Messaging:Retention</c>, and its name in the log.</summary>
    string Name { get; }

    /// <summary>How long its records are kept when <c>Messaging:Retention:{Name}</c> is not set;
    /// null: the safe horizon of the topics consumed (<see cref="Pruner.SafeHorizon"/>).</summary>
    TimeSpan? DefaultRetention { get; }

    /// <summary>True when a record stops a re-delivered event from being applied twice (or counted
    /// twice): kept shorter than the safe horizon, it would let a re-delivery through, so that is logged.</summary>
    bool GuardsAgainstRedelivery { get; }

    /// <summary>Deletes (or folds away) at most <paramref name="limit"/> of its records older than
    /// <paramref name="before"/>, in the transaction given; returns how many it took, so that fewer
    /// than <paramref name="limit"/> means none is left.</summary>
    Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit);
}

/// <summary>Keeps what a service records from growing for ever: the processed-event records and
/// every step the service registered, each pruned once its records can no longer matter.</summary>
/// <remarks>Kafka deletes whole segments: a record may outlive <c>retention.ms</c> by up to a
/// segment's age (<c>segment.ms</c>, 7 days by default) plus the broker's retention check interval
/// (5 minutes by default). Compacted topics keep a key's latest record for ever, so nothing bounds
/// their re-delivery by age: their handlers are idempotent by nature (an upsert of the latest
/// state), and their records are pruned like the others. One loop, chunked transactions: a
/// consumer waits for the write lock one chunk at most.</remarks>
public sealed partial class Pruner(
    ServiceDatabase database,
    ConsumerRegistration registration,
    MessagingOptions options,
    IEnumerable<IPruneStep> registeredSteps,
    ILogger<Pruner> logger) : BackgroundLoop
{
    /// <summary>Kafka's default <c>segment.ms</c>; the suite's topics do not change it.</summary>
    public static readonly TimeSpan SegmentAge = TimeSpan.FromDays(7);

    /// <summary>Kafka's default <c>log.retention.check.interval.ms</c>.</summary>
    public static readonly TimeSpan RetentionCheckInterval = TimeSpan.FromMinutes(5);

    /// <summary>For clock skew between the brokers and this host, and for a broker that was down.</summary>
    public static readonly TimeSpan Margin = TimeSpan.FromDays(1);

    private readonly IReadOnlyList<IPruneStep> _steps = [new ProcessedEventsPruneStep(options), .. registeredSteps];
    private readonly Dictionary<string, long> _pruned = [];

    /// <summary>How long a record must be kept so that its event cannot come back after it is gone:
    /// the longest a record of any non-compacted topic consumed may still be fetched, plus a margin.</summary>
    public static TimeSpan SafeHorizon(IEnumerable<TopicSpec> consumed)
    {
        var longest = consumed.Where(t => !t.Compacted).Select(t => t.Retention).DefaultIfEmpty(TimeSpan.Zero).Max();
        return longest + SegmentAge + RetentionCheckInterval + Margin;
    }

    public TimeSpan SafeHorizonOfThisService => SafeHorizon(registration.Topics.Select(Topics.Get));

    public IReadOnlyList<IPruneStep> Steps => _steps;

    /// <summary>How long this service remembers the ids of the events it handled: an event older
    /// than this cannot be told apart from one handled before.</summary>
    public TimeSpan ProcessedEventsHorizon => HorizonOf(_steps[0]);

    /// <summary>The horizon in force for <paramref name="step"/>: configured, else its default, else the safe one.</summary>
    public TimeSpan HorizonOf(IPruneStep step) =>
        options.Retention.TryGetValue(step.Name, out var configured) ? configured : step.DefaultRetention ?? SafeHorizonOfThisService;

    /// <summary>Records deleted (or folded) since the service started, all steps together.</summary>
    public long Pruned
    {
        get
        {
            lock (_pruned)
            {
                return _pruned.Values.Sum();
            }
        }
    }

    /// <summary>Records deleted (or folded) by the step named <paramref name="name"/> since the service started.</summary>
    public long PrunedBy(string name)
    {
        lock (_pruned)
        {
            return _pruned.GetValueOrDefault(name);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var safe = SafeHorizonOfThisService;
        foreach (var step in _steps.Where(s => s.GuardsAgainstRedelivery && HorizonOf(s) < safe))
        {
            LogShortHorizon(step.Name, HorizonOf(step), safe);
        }

        using var timer = new PeriodicTimer(options.PruneInterval);
        do
        {
            foreach (var step in _steps)
            {
                try
                {
                    await PruneAsync(step, stoppingToken);
                }
                catch (DbException e)
                {
                    LogPruneFailed(e, step.Name);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Runs every step once; returns how many records went.</summary>
    public async Task<long> PruneAsync(CancellationToken cancellationToken)
    {
        long total = 0;
        foreach (var step in _steps)
        {
            total += await PruneAsync(step, cancellationToken);
        }

        return total;
    }

    /// <summary>Deletes in chunks, each its own short transaction, so consumers never wait long.</summary>
    public async Task<long> PruneAsync(IPruneStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        var horizon = HorizonOf(step);
        var before = DateTimeOffset.UtcNow - horizon;
        long total = 0;
        while (true)
        {
            var taken = await database.WriteAsync(
                async t =>
                {
                    // Instances prune too: on a server database, two folds at once would count twice.
                    await database.Sql.SerializeAsync(t, $"prune:{step.Name}");
                    return await step.PruneAsync(t, before, options.PruneChunkSize);
                },
                cancellationToken);
            total += taken;
            if (taken < options.PruneChunkSize)
            {
                break;
            }
        }

        if (total > 0)
        {
            lock (_pruned)
            {
                _pruned[step.Name] = _pruned.GetValueOrDefault(step.Name) + total;
            }

            LogPruned(total, step.Name, horizon);
        }

        return total;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pruned {Count} record(s) of {Step} older than {Horizon}")]
    private partial void LogPruned(long count, string step, TimeSpan horizon);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Records of {Step} are kept {Horizon}, less than the {Safe} after which Kafka surely deleted their events: an event re-delivered in between would be applied again")]
    private partial void LogShortHorizon(string step, TimeSpan horizon, TimeSpan safe);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pruning {Step} failed; trying again at the next interval")]
    private partial void LogPruneFailed(Exception exception, string step);
}

/// <summary>The ids of processed events, which turn a re-delivery into a no-op while Kafka may still re-deliver.</summary>
internal sealed class ProcessedEventsPruneStep(MessagingOptions options) : IPruneStep
{
    public string Name => "ProcessedEvents";

    public TimeSpan? DefaultRetention => options.ProcessedEventsRetention;

    public bool GuardsAgainstRedelivery => true;

    public Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        transaction.Connection!.ExecuteAsync(
            """
            DELETE FROM processed_events WHERE event_id IN (
                SELECT event_id FROM processed_events WHERE processed_at < @before ORDER BY processed_at LIMIT @limit)
            """,
            new { before = before.ToString("O"), limit },
            transaction);
}
