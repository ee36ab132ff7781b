using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Bookstore.Messaging;

public sealed record GroupStatus(string GroupId, string State, IReadOnlyList<MemberStatus> Members)
{
    public long TotalLag => Members.Sum(m => m.Partitions.Sum(p => p.Lag ?? 0));
}

/// <param name="ClientId">The client id the member chose: <c>service-pid</c> for the suite's services.</param>
public sealed record MemberStatus(string MemberId, string ClientId, string Host, IReadOnlyList<PartitionLag> Partitions)
{
    public bool Idle => Partitions.Count == 0;
}

/// <param name="Committed">The group's committed offset; null when it has committed none.</param>
/// <param name="Lag">End offset minus committed offset (everything, when nothing is committed).</param>
public sealed record PartitionLag(string Topic, int Partition, long? Committed, long End, long? Lag);

/// <summary>Who is in a consumer group, which partitions each member owns, and how far behind it is.
/// Uses only what Kafka 0.9 answers too: DescribeGroups, OffsetFetch and ListOffsets (all verified
/// against the local cluster). A group with no live member has no members here (0.9 drops it).</summary>
public static class ConsumerGroupInspector
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static async Task<IReadOnlyList<GroupStatus>> DescribeAsync(KafkaConnection connection, IReadOnlyCollection<string> groupIds)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var admin = new AdminClientBuilder(KafkaClientConfigs.Admin(connection, "bookstore-inspector"))
            .SetLogHandler((_, _) => { })
            .Build();
        return await DescribeAsync(admin, groupIds);
    }

    /// <summary>The same with a client the caller keeps (a watcher that asks every second).</summary>
    public static async Task<IReadOnlyList<GroupStatus>> DescribeAsync(IAdminClient admin, IReadOnlyCollection<string> groupIds)
    {
        ArgumentNullException.ThrowIfNull(admin);
        var described = await admin.DescribeConsumerGroupsAsync(groupIds, new DescribeConsumerGroupsOptions { RequestTimeout = Timeout });
        var partitions = described.ConsumerGroupDescriptions
            .SelectMany(g => g.Members.SelectMany(m => m.Assignment.TopicPartitions))
            .Distinct()
            .ToList();
        var ends = partitions.Count == 0
            ? new Dictionary<TopicPartition, long>()
            : (await admin.ListOffsetsAsync(partitions.Select(tp => new TopicPartitionOffsetSpec { TopicPartition = tp, OffsetSpec = OffsetSpec.Latest() }), new ListOffsetsOptions { RequestTimeout = Timeout }))
                .ResultInfos.ToDictionary(r => r.TopicPartitionOffsetError.TopicPartition, r => r.TopicPartitionOffsetError.Offset.Value);

        var result = new List<GroupStatus>();
        foreach (var group in described.ConsumerGroupDescriptions.OrderBy(g => g.GroupId, StringComparer.Ordinal))
        {
            var owned = group.Members.SelectMany(m => m.Assignment.TopicPartitions).ToList();
            var committed = owned.Count == 0
                ? new Dictionary<TopicPartition, long>()
                : (await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group.GroupId, owned)], new ListConsumerGroupOffsetsOptions { RequestTimeout = Timeout }))
                    .SelectMany(r => r.Partitions)
                    .ToDictionary(p => p.TopicPartition, p => p.Offset.Value);
            var members = group.Members
                .Select(m => new MemberStatus(
                    m.ConsumerId,
                    m.ClientId,
                    m.Host,
                    [.. m.Assignment.TopicPartitions
                        .OrderBy(tp => tp.Topic, StringComparer.Ordinal).ThenBy(tp => tp.Partition.Value)
                        .Select(tp => Lag(tp, committed, ends))]))
                .OrderBy(m => m.ClientId, StringComparer.Ordinal)
                .ToList();
            result.Add(new GroupStatus(group.GroupId, group.State.ToString(), members));
        }

        return result;
    }

    private static PartitionLag Lag(TopicPartition partition, Dictionary<TopicPartition, long> committed, Dictionary<TopicPartition, long> ends)
    {
        var end = ends.GetValueOrDefault(partition, -1);
        long? done = committed.TryGetValue(partition, out var c) && c >= 0 ? c : null;
        long? lag = end < 0 ? null : end - (done ?? 0);
        return new PartitionLag(partition.Topic, partition.Partition.Value, done, end, lag);
    }
}
