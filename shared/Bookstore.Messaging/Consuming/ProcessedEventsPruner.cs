using Bookstore.Contracts;
using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Consuming;

/// <summary>Keeps the processed-event records from growing for ever: a record is deleted once the
/// event it stands for can no longer be delivered again, i.e. once Kafka has deleted it.</summary>
/// <remarks>Kafka deletes whole segments: a record may outlive <c>retention.ms</c> by up to a
/// segment's age (<c>segment.ms</c>, 7 days by default) plus the broker's retention check interval
/// (5 minutes by default). Compacted topics keep a key's latest record for ever, so nothing bounds
/// their re-delivery by age: their handlers are idempotent by nature (an upsert of the latest
/// state), and their records are pruned like the others.</remarks>
public sealed partial class ProcessedEventsPruner(
    ServiceDatabase database,
    ConsumerRegistration registration,
    MessagingOptions options,
    ILogger<ProcessedEventsPruner> logger) : BackgroundService
{
    /// <summary>Kafka's default <c>segment.ms</c>; the suite's topics do not change it.</summary>
    public static readonly TimeSpan SegmentAge = TimeSpan.FromDays(7);

    /// <summary>Kafka's default <c>log.retention.check.interval.ms</c>.</summary>
    public static readonly TimeSpan RetentionCheckInterval = TimeSpan.FromMinutes(5);

    /// <summary>For clock skew between the brokers and this host, and for a broker that was down.</summary>
    public static readonly TimeSpan Margin = TimeSpan.FromDays(1);

    private const int ChunkSize = 5_000;

    /// <summary>How long a record must be kept so that its event cannot come back after it is gone:
    /// the longest a record of any non-compacted topic consumed may still be fetched, plus a margin.</summary>
    public static TimeSpan SafeHorizon(IEnumerable<TopicSpec> consumed)
    {
        var longest = consumed.Where(t => !t.Compacted).Select(t => t.Retention).DefaultIfEmpty(TimeSpan.Zero).Max();
        return longest + SegmentAge + RetentionCheckInterval + Margin;
    }

    /// <summary>The horizon in force: the configured one, else the safe one for the topics consumed.</summary>
    public TimeSpan Horizon => options.ProcessedEventsRetention ?? SafeHorizon(registration.Topics.Select(Topics.Get));

    /// <summary>Records deleted since the service started.</summary>
    public long Pruned { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var safe = SafeHorizon(registration.Topics.Select(Topics.Get));
        if (Horizon < safe)
        {
            LogShortHorizon(Horizon, safe);
        }

        using var timer = new PeriodicTimer(options.PruneInterval);
        do
        {
            try
            {
                await PruneAsync(stoppingToken);
            }
            catch (Microsoft.Data.Sqlite.SqliteException e)
            {
                LogPruneFailed(e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Deletes in chunks, each its own short transaction, so consumers never wait long.</summary>
    public async Task<long> PruneAsync(CancellationToken cancellationToken)
    {
        var before = (DateTimeOffset.UtcNow - Horizon).ToString("O");
        long total = 0;
        while (true)
        {
            var deleted = await database.WriteAsync(
                t => t.Connection!.ExecuteAsync(
                    """
                    DELETE FROM processed_events WHERE event_id IN (
                        SELECT event_id FROM processed_events WHERE processed_at < @before ORDER BY processed_at LIMIT @ChunkSize)
                    """,
                    new { before, ChunkSize },
                    t),
                cancellationToken);
            total += deleted;
            if (deleted < ChunkSize)
            {
                break;
            }
        }

        if (total > 0)
        {
            Pruned += total;
            LogPruned(total, Horizon);
        }

        return total;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pruned {Count} processed-event record(s) older than {Horizon}")]
    private partial void LogPruned(long count, TimeSpan horizon);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Processed-event records are kept {Horizon}, less than the {Safe} after which Kafka surely deleted their events: an event re-delivered in between would be handled again")]
    private partial void LogShortHorizon(TimeSpan horizon, TimeSpan safe);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pruning processed-event records failed; trying again at the next interval")]
    private partial void LogPruneFailed(Exception exception);
}
