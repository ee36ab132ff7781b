namespace Bookstore.Contracts;

/// <summary>How a topic is declared: the one description the local cluster, the compose file,
/// the Kubernetes manifests and the tests create or check topics from.</summary>
public sealed record TopicSpec(
    string Name,
    int Partitions,
    TimeSpan Retention,
    bool Compacted = false,
    int ReplicationFactor = TopicSpec.DefaultReplicationFactor,
    int MinInSyncReplicas = TopicSpec.DefaultMinInSyncReplicas)
{
    /// <summary>Three copies survive one broker down while a second failure is still detected.</summary>
    public const int DefaultReplicationFactor = 3;

    /// <summary>With <c>acks=all</c>, a write is acknowledged only once two replicas hold it, so a
    /// single broker loss never loses an acknowledged write.</summary>
    public const int DefaultMinInSyncReplicas = 2;

    public string CleanupPolicy => Compacted ? "compact" : "delete";

    public long RetentionMs => (long)Retention.TotalMilliseconds;

    /// <summary>The topic as it can exist on a cluster of <paramref name="brokerCount"/> brokers:
    /// a single-broker test container cannot hold three replicas.</summary>
    public TopicSpec CappedTo(int brokerCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerCount, 1);
        var replicas = Math.Min(ReplicationFactor, brokerCount);
        return this with
        {
            ReplicationFactor = replicas,
            MinInSyncReplicas = Math.Min(MinInSyncReplicas, replicas),
        };
    }

    /// <summary>Topic-level configuration in Kafka's own property names.</summary>
    public IReadOnlyDictionary<string, string> Configs() => new Dictionary<string, string>
    {
        ["cleanup.policy"] = CleanupPolicy,
        ["min.insync.replicas"] = MinInSyncReplicas.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["retention.ms"] = RetentionMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
