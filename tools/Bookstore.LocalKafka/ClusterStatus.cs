using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>What <c>kafka status</c> reports: processes, registrations, and the partitions' leaders,
/// replicas and in-sync replicas as the brokers see them.</summary>
public sealed record ClusterStatus(
    string BootstrapServers,
    string? BrokerVersion,
    NodeStatus ZooKeeper,
    IReadOnlyList<NodeStatus> Brokers,
    IReadOnlyList<TopicStatus> Topics,
    string? MetadataError)
{
    public bool AllBrokersUp => Brokers.All(b => b.Registered);
}

/// <param name="Running">Its process is alive.</param>
/// <param name="Registered">ZooKeeper serves (for ZooKeeper itself), or the broker holds its
/// registration in ZooKeeper (for a broker).</param>
public sealed record NodeStatus(string Name, int Id, int Port, int? Pid, bool Running, bool Registered);

/// <param name="Declared">The topic is in the suite's topic table.</param>
public sealed record TopicStatus(string Name, bool Declared, int? DeclaredPartitions, int? DeclaredReplicationFactor, IReadOnlyList<PartitionInfo> Partitions)
{
    public bool Exists => Partitions.Count > 0;
}
