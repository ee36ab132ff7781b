namespace Bookstore.Messaging;

/// <summary>Finds the cluster to talk to: explicit settings first, then the environment, then the
/// local cluster of this checkout.</summary>
public static class KafkaConnectionResolver
{
    public const string BootstrapServersVariable = "KAFKA_BOOTSTRAP_SERVERS";

    /// <summary>Set only for a user's own legacy (pre-0.10) cluster; a cluster given by address
    /// alone is taken to be modern.</summary>
    public const string BrokerVersionVariable = "KAFKA_BROKER_VERSION";

    public static KafkaConnection? FromEnvironment()
    {
        var servers = Environment.GetEnvironmentVariable(BootstrapServersVariable);
        if (string.IsNullOrWhiteSpace(servers))
        {
            return null;
        }

        var version = Environment.GetEnvironmentVariable(BrokerVersionVariable);
        return new KafkaConnection(servers.Trim(), string.IsNullOrWhiteSpace(version) ? null : version.Trim());
    }

    /// <summary>Explicit settings (e.g. configuration <c>Kafka:BootstrapServers</c>), else the
    /// environment, else this checkout's local cluster; <c>null</c> when none is known.</summary>
    public static KafkaConnection? Resolve(string? bootstrapServers = null, string? brokerVersion = null)
    {
        if (!string.IsNullOrWhiteSpace(bootstrapServers))
        {
            return new KafkaConnection(bootstrapServers, string.IsNullOrWhiteSpace(brokerVersion) ? null : brokerVersion);
        }

        return FromEnvironment()
            ?? (RepositoryRoot.TryFind() is { } root ? LocalClusterState.TryRead(root)?.Connection : null);
    }
}
