using Bookstore.Contracts;
using Bookstore.Messaging;
using Confluent.Kafka;

namespace Bookstore.Analytics.Dashboard;

public sealed record BrokerView(int Id, string Host, int Port, bool Up, int Leads);

public sealed record PartitionView(int Partition, int Leader, IReadOnlyList<int> Replicas, IReadOnlyList<int> Isr, long? EndOffset, string? Error);

public sealed record TopicView(string Name, IReadOnlyList<PartitionView> Partitions);

/// <summary>A group settled on a new membership or assignment: who joined, who left, and the
/// assignment before and after (member → "topic[partitions]").</summary>
public sealed record Rebalance(
    DateTimeOffset At,
    string GroupId,
    IReadOnlyList<string> Joined,
    IReadOnlyList<string> Left,
    IReadOnlyDictionary<string, string> Before,
    IReadOnlyDictionary<string, string> After);

public sealed record ClusterView(
    DateTimeOffset At,
    string? Error,
    IReadOnlyList<BrokerView> Brokers,
    IReadOnlyList<TopicView> Topics,
    IReadOnlyList<GroupStatus> Groups,
    IReadOnlyList<Rebalance> Rebalances);

/// <summary>Asks the cluster who leads what and who owns which partition, with the calls
/// <c>./bookstore status</c> uses and Kafka 0.9 answers (Metadata, ListGroups/DescribeGroups,
/// OffsetFetch, ListOffsets), and notes every change of a group's settled assignment: every second
/// while someone watches the dashboard, every half minute, without lag, while nobody does.</summary>
/// <remarks>A snapshot taken during a rebalance shows empty assignments, so only settled states
/// (Stable, or no member at all) are compared. A broker the cluster stops listing is shown down:
/// Kafka's metadata names live brokers only. One look is some thirty requests to the brokers, and
/// they pay per request: looking every second for nobody cost an idle cluster about 4 % of a core.</remarks>
public sealed partial class ClusterWatcher(MessagingOptions options, EventTail tail, ILogger<ClusterWatcher> logger) : BackgroundLoop
{
    private const int RebalancesKept = 50;
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan UnwatchedInterval = TimeSpan.FromSeconds(30);

    /// <summary>How long after its last request the dashboard counts as watched (the page asks every second).</summary>
    private static readonly TimeSpan WatchedFor = TimeSpan.FromSeconds(30);

    private readonly Dictionary<int, BrokerInfo> _brokersSeen = [];
    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _settled = [];
    private readonly LinkedList<Rebalance> _rebalances = [];
    private readonly Watched _watched = new();
    private volatile ClusterView _view = new(DateTimeOffset.UtcNow, "not read yet", [], [], [], []);
    private long _lastWatchedTicks = long.MinValue / 2; // never (and no overflow when subtracted)

    /// <summary>The last look, for someone watching: while nobody did, the next look is taken at once.</summary>
    public ClusterView Watch()
    {
        var last = Interlocked.Exchange(ref _lastWatchedTicks, Environment.TickCount64);
        if (Environment.TickCount64 - last > WatchedFor.TotalMilliseconds)
        {
            _watched.Notify();
        }

        return _view;
    }

    private bool IsWatched => Environment.TickCount64 - Interlocked.Read(ref _lastWatchedTicks) <= WatchedFor.TotalMilliseconds;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        using var admin = new AdminClientBuilder(KafkaClientConfigs.Admin(options.Connection(), $"{options.ServiceName}-dashboard"))
            .SetLogHandler((_, _) => { }) // an unreachable broker is shown on the page, not logged every second
            .Build();
        using var inspector = new ConsumerGroupInspector(options.Connection(), $"{options.ServiceName}-dashboard");
        var groupIds = ConsumerGroups.All.Select(g => options.Namespace + g).ToList();
        do
        {
            var started = Environment.TickCount64;
            try
            {
                var metadata = await Task.Run(() => ClusterSnapshot.From(admin.GetMetadata(TimeSpan.FromSeconds(5))), stoppingToken);
                // Lag only for someone watching: it takes a Kafka client per group, kept open.
                var groups = await inspector.DescribeAsync(groupIds, withLag: IsWatched);
                _view = Update(metadata, groups);
            }
            catch (KafkaException e)
            {
                _view = _view with { At = DateTimeOffset.UtcNow, Error = e.Error.Reason };
                LogUnreachable(e.Error.Reason);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The page says what went wrong; the service it lives in carries on.
                _view = _view with { At = DateTimeOffset.UtcNow, Error = e.Message };
                LogFailed(e);
            }
            var pause = (IsWatched ? Interval : UnwatchedInterval) - TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
            if (pause > TimeSpan.Zero)
            {
                await _watched.WaitAsync(pause, stoppingToken);
            }
        }
        while (!stoppingToken.IsCancellationRequested);
    }

    private ClusterView Update(ClusterSnapshot snapshot, IReadOnlyList<GroupStatus> groups)
    {
        foreach (var broker in snapshot.Brokers)
        {
            _brokersSeen[broker.Id] = broker;
        }

        var topics = Topics.Seed
            .Select(spec => new TopicView(
                spec.Name,
                [.. (snapshot.Topic(options.TopicName(spec.Name))?.Partitions ?? [])
                    .Select(p => new PartitionView(p.Id, p.Leader, p.Replicas, p.InSyncReplicas, tail.EndOffset(spec.Name, p.Id), p.Error))]))
            .ToList();
        var leads = topics.SelectMany(t => t.Partitions).Where(p => p.Leader >= 0).GroupBy(p => p.Leader).ToDictionary(g => g.Key, g => g.Count());
        var live = snapshot.Brokers.Select(b => b.Id).ToHashSet();
        var brokers = _brokersSeen.Values
            .OrderBy(b => b.Id)
            .Select(b => new BrokerView(b.Id, b.Host, b.Port, live.Contains(b.Id), leads.GetValueOrDefault(b.Id)))
            .ToList();

        // Logical names: the page shows the suite's topics and groups, whatever namespace a test gave them.
        var views = ConsumerGroups.All.Select(id =>
        {
            var group = groups.FirstOrDefault(g => g.GroupId == options.Namespace + id);
            var members = (group?.Members ?? [])
                .Select(m => m with { Partitions = [.. m.Partitions.Select(p => p with { Topic = options.LogicalTopicName(p.Topic) })] })
                .ToList();
            return new GroupStatus(id, group?.State ?? "Empty", members);
        }).ToList();

        foreach (var group in views.Where(g => g.State == "Stable" || g.Members.Count == 0))
        {
            NoteAssignment(group);
        }

        return new ClusterView(DateTimeOffset.UtcNow, null, brokers, topics, views, [.. _rebalances]);
    }

    private void NoteAssignment(GroupStatus group)
    {
        var assignment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var member in group.Members)
        {
            var partitions = member.Idle ? "idle" : string.Join(" ", member.Partitions.GroupBy(p => p.Topic).Select(t => $"{t.Key}[{string.Join(",", t.Select(p => p.Partition))}]"));
            if (!assignment.TryAdd(NameOf(member), partitions))
            {
                assignment[$"{NameOf(member)} ({member.MemberId})"] = partitions;
            }
        }

        if (_settled.TryGetValue(group.GroupId, out var before) && !Same(before, assignment))
        {
            var rebalance = new Rebalance(
                DateTimeOffset.UtcNow,
                group.GroupId,
                [.. assignment.Keys.Except(before.Keys).Order(StringComparer.Ordinal)],
                [.. before.Keys.Except(assignment.Keys).Order(StringComparer.Ordinal)],
                before,
                assignment);
            _rebalances.AddFirst(rebalance);
            if (_rebalances.Count > RebalancesKept)
            {
                _rebalances.RemoveLast();
            }

            LogRebalance(group.GroupId, before.Count, assignment.Count, string.Join("; ", assignment.Select(a => $"{a.Key}: {a.Value}")));
        }

        _settled[group.GroupId] = assignment;
    }

    /// <summary>The client id (<c>service-pid</c>), with the host where that alone is ambiguous:
    /// in containers every service runs as process 1.</summary>
    private static string NameOf(MemberStatus member)
    {
        var host = member.Host.TrimStart('/');
        return host is "127.0.0.1" or "::1" or "localhost" ? member.ClientId : $"{member.ClientId}@{host}";
    }

    private static bool Same(IReadOnlyDictionary<string, string> a, Dictionary<string, string> b) =>
        a.Count == b.Count && a.All(entry => b.TryGetValue(entry.Key, out var value) && value == entry.Value);

    private sealed class Watched : WakeSignal;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dashboard: the cluster did not answer: {Reason}")]
    private partial void LogUnreachable(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dashboard: reading the cluster failed")]
    private partial void LogFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group} rebalanced: {Before} → {After} member(s): {Assignment}")]
    private partial void LogRebalance(string group, int before, int after, string assignment);
}
