using System.Globalization;
using Confluent.Kafka;

namespace Bookstore.Messaging;

/// <summary>Where the cluster is, which broker version runs it and how to authenticate to it: the
/// only input from which every client setting that depends on the broker is derived.</summary>
/// <param name="BootstrapServers">Comma-separated <c>host:port</c> list.</param>
/// <param name="BrokerVersion">The brokers' version when known to be older than the client's
/// default assumptions (e.g. <c>0.9.0.1</c>); <c>null</c> means a modern broker (0.10+) that
/// answers ApiVersions requests itself.</param>
public sealed record KafkaConnection(string BootstrapServers, string? BrokerVersion = null)
{
    private static readonly Version FirstVersionWithApiVersions = new(0, 10);

    /// <summary>A broker older than 0.10 does not answer ApiVersions: the client must be told its
    /// version instead, and must not ask (asking makes 0.9 close the connection).</summary>
    public bool IsLegacyBroker => ParsedBrokerVersion is { } v && v < FirstVersionWithApiVersions;

    public KafkaCapabilities Capabilities => IsLegacyBroker ? KafkaCapabilities.Legacy : KafkaCapabilities.Modern;

    /// <summary>How clients authenticate; plaintext unless configured.</summary>
    public KafkaSecurity Security { get; init; } = KafkaSecurity.Plaintext;

    private Version? ParsedBrokerVersion => BrokerVersion is null ? null : ParseVersion(BrokerVersion);

    /// <summary>Sets the bootstrap servers, the security settings and, for a legacy broker only,
    /// the protocol pinning. The pinning selects protocol versions that Kafka 4 removed: it must
    /// never reach a modern broker, which is why nothing else in the suite sets it. Every client
    /// of the suite is configured here, so none can miss the credentials.</summary>
    public T ApplyTo<T>(T config)
        where T : ClientConfig
    {
        ArgumentNullException.ThrowIfNull(config);
        config.BootstrapServers = BootstrapServers;
        if (IsLegacyBroker)
        {
            config.ApiVersionRequest = false;
            config.BrokerVersionFallback = BrokerVersion;
        }

        Security.ApplyTo(config, IsLegacyBroker);
        return config;
    }

    public override string ToString()
    {
        var text = BrokerVersion is null ? BootstrapServers : $"{BootstrapServers} (Kafka {BrokerVersion})";
        return Security.Protocol == SecurityProtocol.Plaintext ? text : $"{text} over {Security}";
    }

    /// <summary>Parses <c>0.9.0.1</c>, <c>3.9.1</c> or <c>4.1.0-rc1</c> into a comparable version.</summary>
    public static Version ParseVersion(string version)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(version);
        var numeric = version.Split('-', '+')[0];
        var parts = numeric.Split('.');
        if (parts.Length is < 2 or > 4 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            throw new FormatException($"'{version}' is not a Kafka version (expected e.g. 0.9.0.1 or 3.9.1).");
        }

        return Version.Parse(numeric);
    }
}

/// <summary>What the brokers can do. Code that must run on 0.9 and on modern Kafka asks this
/// instead of comparing versions.</summary>
public sealed record KafkaCapabilities(
    bool RecordHeaders,
    bool RecordTimestamps,
    bool IdempotentProducer,
    bool AdminTopicApis)
{
    /// <summary>Kafka 0.9: no headers, no timestamps, no idempotence, no CreateTopics /
    /// DescribeConfigs / DescribeCluster (those calls hang for the whole request timeout).</summary>
    public static KafkaCapabilities Legacy { get; } = new(false, false, false, false);

    public static KafkaCapabilities Modern { get; } = new(true, true, true, true);
}
