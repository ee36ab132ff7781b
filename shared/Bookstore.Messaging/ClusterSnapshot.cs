using Confluent.Kafka;

namespace Bookstore.Messaging;

/// <summary>Brokers, and per partition its leader, replicas and in-sync replicas, as the cluster
/// reports them in a Metadata response (an API every Kafka version has).</summary>
public sealed record ClusterSnapshot(IReadOnlyList<BrokerInfo> Brokers, IReadOnlyList<TopicInfo> Topics)
{
    public TopicInfo? Topic(string name) => Topics.FirstOrDefault(t => t.Name == name);

    /// <summary>Reads the cluster's metadata; throws <see cref="KafkaException"/> when no broker answers in time.</summary>
    public static ClusterSnapshot Read(KafkaConnection connection, TimeSpan timeout)
    {
        using var reader = new ClusterMetadataReader(connection);
        return reader.Read(timeout);
    }

    public static ClusterSnapshot From(Metadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var brokers = metadata.Brokers
            .Select(b => new BrokerInfo(b.BrokerId, b.Host, b.Port))
            .OrderBy(b => b.Id)
            .ToList();
        var topics = metadata.Topics
            .Where(t => !t.Error.IsError || t.Partitions.Count > 0)
            .Select(t => new TopicInfo(
                t.Topic,
                t.Partitions
                    .Select(p => new PartitionInfo(p.PartitionId, p.Leader, [.. p.Replicas], [.. p.InSyncReplicas], p.Error.IsError ? p.Error.Reason : null))
                    .OrderBy(p => p.Id)
                    .ToList()))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .ToList();
        return new ClusterSnapshot(brokers, topics);
    }
}

/// <summary>Reads <see cref="ClusterSnapshot"/>s through one admin client, for a caller that polls
/// until the cluster reaches a state. Each read is a fresh Metadata request; only the client is
/// kept: a librdkafka instance costs threads and connections to start, and destroying one can
/// (rarely) hang (confluentinc/librdkafka#1640, #3470), so a wait makes one, not one per poll.</summary>
public sealed class ClusterMetadataReader(KafkaConnection connection) : IDisposable
{
    private readonly IAdminClient _admin = new AdminClientBuilder(KafkaClientConfigs.Admin(connection, "bookstore-metadata"))
        .SetLogHandler((_, _) => { }) // a probe: an unreachable broker is the answer, not noise
        .Build();

    public string BootstrapServers => connection.BootstrapServers;

    /// <summary>Throws <see cref="KafkaException"/> when no broker answers in time.</summary>
    public ClusterSnapshot Read(TimeSpan timeout) => ClusterSnapshot.From(_admin.GetMetadata(timeout));

    /// <summary>Null when no broker answers in time.</summary>
    public ClusterSnapshot? TryRead(TimeSpan timeout)
    {
        try
        {
            return Read(timeout);
        }
        catch (KafkaException)
        {
            return null;
        }
    }

    public void Dispose() => _admin.Dispose();
}

public sealed record BrokerInfo(int Id, string Host, int Port);

public sealed record TopicInfo(string Name, IReadOnlyList<PartitionInfo> Partitions)
{
    public int ReplicationFactor => Partitions.Count == 0 ? 0 : Partitions.Max(p => p.Replicas.Count);
}

/// <param name="Error">As the broker reports it. Kafka 0.9 lists only live brokers in
/// <see cref="Replicas"/> and <see cref="InSyncReplicas"/> and says "Replica not available" while one is down.</param>
public sealed record PartitionInfo(int Id, int Leader, IReadOnlyList<int> Replicas, IReadOnlyList<int> InSyncReplicas, string? Error = null)
{
    public bool HasLeader => Leader >= 0;
}
