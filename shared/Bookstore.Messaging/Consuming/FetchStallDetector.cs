using System.Text.Json;
using Confluent.Kafka;

namespace Bookstore.Messaging.Consuming;

/// <summary>What librdkafka's statistics say about one partition's fetcher (librdkafka's
/// STATISTICS.md, <c>topics.*.partitions.*</c>). Offsets are librdkafka's: -1001 means unknown.</summary>
/// <param name="Topic">The physical topic name.</param>
/// <param name="Partition">The partition id.</param>
/// <param name="FetchState"><c>fetch_state</c>: none, stopping, stopped, offset-query, offset-wait, active.</param>
/// <param name="FetchQueueCount"><c>fetchq_cnt</c>: messages prefetched and not yet handed to the
/// application. librdkafka reports the length of the queue the partition's fetch queue is forwarded
/// to, which for a subscribed consumer is the one queue all its partitions share.</param>
/// <param name="FetchQueueBytes"><c>fetchq_size</c>: the bytes in that queue.</param>
/// <param name="NextOffset"><c>next_offset</c>: the next offset librdkafka fetches from the broker.</param>
/// <param name="AppOffset"><c>app_offset</c>: the offset after the last message handed to the application.</param>
/// <param name="CommittedOffset"><c>committed_offset</c>.</param>
/// <param name="HighOffset"><c>hi_offset</c>: the high watermark in the broker's last answer for the partition.</param>
/// <param name="ConsumerLag"><c>consumer_lag</c>: the high watermark less the committed offset.</param>
public sealed record PartitionFetchStatistics(
    string Topic,
    int Partition,
    string FetchState,
    long FetchQueueCount,
    long FetchQueueBytes,
    long NextOffset,
    long AppOffset,
    long CommittedOffset,
    long HighOffset,
    long ConsumerLag)
{
    public const string ActiveFetchState = "active";

    public TopicPartition TopicPartition => new(Topic, Partition);

    /// <summary>Reads the partitions out of one statistics document, skipping librdkafka's internal
    /// "unassigned" partition (-1).</summary>
    public static List<PartitionFetchStatistics> Parse(string statisticsJson)
    {
        var partitions = new List<PartitionFetchStatistics>();
        using var document = JsonDocument.Parse(statisticsJson);
        if (!document.RootElement.TryGetProperty("topics", out var topics) || topics.ValueKind != JsonValueKind.Object)
        {
            return partitions;
        }

        foreach (var topic in topics.EnumerateObject())
        {
            if (!topic.Value.TryGetProperty("partitions", out var topicPartitions) || topicPartitions.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var entry in topicPartitions.EnumerateObject())
            {
                var p = entry.Value;
                var partition = (int)Number(p, "partition", -1);
                if (partition < 0)
                {
                    continue;
                }

                partitions.Add(new PartitionFetchStatistics(
                    topic.Name,
                    partition,
                    p.TryGetProperty("fetch_state", out var state) ? state.GetString() ?? string.Empty : string.Empty,
                    Number(p, "fetchq_cnt", 0),
                    Number(p, "fetchq_size", 0),
                    Number(p, "next_offset", Offset.Unset.Value),
                    Number(p, "app_offset", Offset.Unset.Value),
                    Number(p, "committed_offset", Offset.Unset.Value),
                    Number(p, "hi_offset", Offset.Unset.Value),
                    Number(p, "consumer_lag", -1)));
            }
        }

        return partitions;
    }

    private static long Number(JsonElement element, string name, long missing) =>
        element.TryGetProperty(name, out var value) && value.TryGetInt64(out var number) ? number : missing;
}

/// <summary>A partition librdkafka has stopped fetching although the broker has data for it.</summary>
public sealed record FetchStall(PartitionFetchStatistics Statistics, TimeSpan IdleFor);

/// <summary>A partition whose fetcher has stayed in a state other than "active" (e.g. waiting for
/// an offset) for a whole check interval: not restarted, but worth an operator's eye.</summary>
public sealed record LingeringFetchState(PartitionFetchStatistics Statistics, TimeSpan For);

public sealed record FetchStallVerdict(IReadOnlyList<FetchStall> Stalled, IReadOnlyList<LingeringFetchState> Lingering)
{
    public static readonly FetchStallVerdict None = new([], []);
}

/// <summary>Decides, from librdkafka's own statistics, which partitions to restart. A partition is
/// stalled only when, for a whole check interval, it stayed assigned and actively fetched, nothing
/// waited in the consumer's fetch queue, librdkafka's fetch position (<c>next_offset</c>) and the
/// application's position did not move, and the broker reported data beyond the fetch position.
/// A busy or lagging application always has prefetched messages queued (librdkafka fetches ahead
/// until its queue is full), so it never looks stalled, however far behind it is; seeking it would
/// only throw the prefetched data away.</summary>
/// <remarks>Pure: fed with parsed statistics and a clock, so it is tested without a broker.
/// The empty-queue condition is deliberately conservative: librdkafka reports one queue for the
/// whole consumer, so a partition that stops while others keep the queue full is restarted only
/// once the queue drains, i.e. once the application has nothing else to do.</remarks>
public sealed class FetchStallDetector(TimeSpan checkInterval, TimeProvider clock)
{
    private readonly Dictionary<TopicPartition, Watch> _watches = [];

    public TimeSpan CheckInterval { get; } = checkInterval > TimeSpan.Zero
        ? checkInterval
        : throw new ArgumentOutOfRangeException(nameof(checkInterval), checkInterval, "The check interval must be positive.");

    /// <summary>Takes one statistics sample. <paramref name="assignment"/> is what the member owns
    /// now: librdkafka keeps reporting partitions it no longer fetches, and those are forgotten.</summary>
    public FetchStallVerdict Observe(IEnumerable<PartitionFetchStatistics> partitions, IReadOnlyCollection<TopicPartition> assignment)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        ArgumentNullException.ThrowIfNull(assignment);
        var now = clock.GetTimestamp();
        var owned = assignment as ISet<TopicPartition> ?? new HashSet<TopicPartition>(assignment);
        List<FetchStall>? stalled = null;
        List<LingeringFetchState>? lingering = null;
        var seen = new HashSet<TopicPartition>();
        foreach (var statistics in partitions)
        {
            var partition = statistics.TopicPartition;
            if (statistics.Partition < 0 || !owned.Contains(partition) || !seen.Add(partition))
            {
                continue;
            }

            if (!_watches.TryGetValue(partition, out var watch))
            {
                watch = new Watch(statistics, now);
                _watches[partition] = watch;
                continue;
            }

            if (statistics.FetchState != PartitionFetchStatistics.ActiveFetchState)
            {
                watch.IdleSince = null;
                if (statistics.FetchState != watch.Last.FetchState)
                {
                    watch.StateSince = now;
                }
                else if (clock.GetElapsedTime(watch.StateSince, now) is var inState && inState >= CheckInterval)
                {
                    (lingering ??= []).Add(new LingeringFetchState(statistics, inState));
                    watch.StateSince = now; // Reported again only after another whole interval.
                }

                watch.Last = statistics;
                continue;
            }

            if (statistics.FetchState != watch.Last.FetchState)
            {
                watch.StateSince = now;
            }

            var moved = statistics.NextOffset != watch.Last.NextOffset || statistics.AppOffset != watch.Last.AppOffset;
            var idleWithDataWaiting = statistics.FetchQueueCount == 0
                && statistics.NextOffset >= 0
                && statistics.HighOffset > statistics.NextOffset;
            if (!idleWithDataWaiting || moved || watch.Last.FetchState != PartitionFetchStatistics.ActiveFetchState)
            {
                watch.IdleSince = idleWithDataWaiting ? now : null;
            }
            else if (watch.IdleSince is { } since && clock.GetElapsedTime(since, now) is var idleFor && idleFor >= CheckInterval)
            {
                (stalled ??= []).Add(new FetchStall(statistics, idleFor));
                watch.IdleSince = now; // Restarted again only if it stays idle another whole interval.
            }
            else
            {
                watch.IdleSince ??= now;
            }

            watch.Last = statistics;
        }

        foreach (var gone in _watches.Keys.Where(p => !owned.Contains(p)).ToList())
        {
            _watches.Remove(gone);
        }

        return stalled is null && lingering is null ? FetchStallVerdict.None : new FetchStallVerdict(stalled ?? [], lingering ?? []);
    }

    private sealed class Watch(PartitionFetchStatistics first, long now)
    {
        public PartitionFetchStatistics Last { get; set; } = first;

        /// <summary>Since when the partition has been active with an empty queue and data waiting,
        /// its positions unchanged; null while it is not.</summary>
        public long? IdleSince { get; set; } = first.FetchState == PartitionFetchStatistics.ActiveFetchState
            && first.FetchQueueCount == 0 && first.NextOffset >= 0 && first.HighOffset > first.NextOffset ? now : null;

        /// <summary>Since when the partition has been in its current fetch state.</summary>
        public long StateSince { get; set; } = now;
    }
}
