namespace Bookstore.Messaging;

/// <summary>Finds the cluster to talk to: explicit settings first, then the environment. Nothing
/// here knows a developer's checkout: <c>./bookstore up</c> and the tests pass the local cluster's
/// settings to the services they start.</summary>
public static class KafkaConnectionResolver
{
    public const string BootstrapServersVariable = "KAFKA_BOOTSTRAP_SERVERS";

    /// <summary>Set only for a user's own legacy (pre-0.10) cluster; a cluster given by address
    /// alone is taken to be modern.</summary>
    public const string BrokerVersionVariable = "KAFKA_BROKER_VERSION";

    /// <summary>The cluster of <c>KAFKA_BOOTSTRAP_SERVERS</c>, with the security settings of the
    /// environment (<c>Messaging__SecurityProtocol</c> …, as the services read them).</summary>
    public static KafkaConnection? FromEnvironment(KafkaSecurity? security = null)
    {
        var servers = Environment.GetEnvironmentVariable(BootstrapServersVariable);
        if (string.IsNullOrWhiteSpace(servers))
        {
            return null;
        }

        var version = Environment.GetEnvironmentVariable(BrokerVersionVariable);
        return new KafkaConnection(servers.Trim(), string.IsNullOrWhiteSpace(version) ? null : version.Trim())
        {
            Security = security ?? KafkaSecurity.FromEnvironment(),
        };
    }

    /// <summary>Explicit settings (configuration <c>Messaging:BootstrapServers</c>), else the
    /// environment; <c>null</c> when neither names a cluster. <paramref name="security"/> (the
    /// service's configuration) applies to either; unset, the environment's.</summary>
    public static KafkaConnection? Resolve(string? bootstrapServers = null, string? brokerVersion = null, KafkaSecurity? security = null)
    {
        if (!string.IsNullOrWhiteSpace(bootstrapServers))
        {
            return new KafkaConnection(bootstrapServers, string.IsNullOrWhiteSpace(brokerVersion) ? null : brokerVersion)
            {
                Security = security ?? KafkaSecurity.FromEnvironment(),
            };
        }

        return FromEnvironment(security);
    }
}
