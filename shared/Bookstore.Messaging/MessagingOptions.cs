namespace Bookstore.Messaging;

/// <summary>How a service plugs into Kafka and its database; bound from the <c>Messaging</c>
/// configuration section (e.g. <c>Messaging__Namespace</c> in the environment).</summary>
public sealed class MessagingOptions
{
    public const string Section = "Messaging";

    /// <summary>The service's name: its consumer group, the CloudEvents <c>source</c>, the client id.</summary>
    public string ServiceName { get; set; } = string.Empty;

    /// <summary>A prefix for every topic and group name. Empty in normal use; tests set it so
    /// that a run shares a cluster with nothing else.</summary>
    public string Namespace { get; set; } = string.Empty;

    /// <summary>Overrides <c>KAFKA_BOOTSTRAP_SERVERS</c> and the local cluster's state file.</summary>
    public string? BootstrapServers { get; set; }

    public string? BrokerVersion { get; set; }

    /// <summary><c>Plaintext</c> (the default), <c>SaslPlaintext</c>, <c>SaslSsl</c> or <c>Ssl</c>
    /// (Kafka's spellings such as <c>SASL_SSL</c> work too). See <see cref="KafkaSecurity"/>.</summary>
    public string? SecurityProtocol { get; set; }

    /// <summary><c>ScramSha512</c> (the default under SASL), <c>ScramSha256</c> or <c>Plain</c>.</summary>
    public string? SaslMechanism { get; set; }

    public string? SaslUsername { get; set; }

    /// <summary>Never logged; from a secret, not from a committed file.</summary>
    public string? SaslPassword { get; set; }

    /// <summary>The CA certificate (PEM) that signed the brokers' certificates, under SSL.</summary>
    public string? SslCaLocation { get; set; }

    /// <summary>The SQLite file the service owns, when no <see cref="PostgresConnectionString"/> is
    /// given; every instance of the service (on this host) shares it.</summary>
    public string DatabasePath { get; set; } = string.Empty;

    /// <summary>The service's PostgreSQL database (an Npgsql connection string; in configuration
    /// <c>ConnectionStrings:Postgres</c>): instances on any host share it. Unset: SQLite.</summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>Messages handled in one database transaction at most.</summary>
    public int MaxBatchSize { get; set; } = 500;

    /// <summary>Attempts at a message before it goes to the dead-letter topic.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>How long the outbox relay's lease lasts without renewal: a standby takes over this
    /// long after the active relay stopped renewing it (a crash, a stall).</summary>
    public TimeSpan OutboxLeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The largest record the producer sends (librdkafka's <c>message.max.bytes</c>
    /// default, below the brokers' own limit). A dead letter is truncated to fit.</summary>
    public int MaxMessageBytes { get; set; } = 1_000_000;

    /// <summary>How long the ids of processed events are kept; unset: until Kafka has surely
    /// deleted the events (see <see cref="Consuming.Pruner.SafeHorizon"/>).</summary>
    public TimeSpan? ProcessedEventsRetention { get; set; }

    /// <summary>How long the records of each prune step the service registered are kept, by the
    /// step's name (e.g. <c>Messaging:Retention:OrderHistory</c>); unset: the step's default.</summary>
    public Dictionary<string, TimeSpan> Retention { get; set; } = [];

    /// <summary>How often old records are pruned.</summary>
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Records pruned per write transaction at most: a consumer waits for one chunk at most.</summary>
    public int PruneChunkSize { get; set; } = 5_000;

    /// <summary>librdkafka producer properties that override the suite's (e.g.
    /// <c>Messaging:Producer:linger.ms</c>), for tuning and fault tests.</summary>
    public Dictionary<string, string> Producer { get; set; } = [];

    /// <summary>librdkafka's <c>debug</c> contexts for this service's clients (e.g. <c>cgrp,fetch</c>), for diagnosis.</summary>
    public string? KafkaDebug { get; set; }

    /// <summary>How long librdkafka must have left a partition unfetched, with data waiting at the
    /// broker and nothing queued for the application, before the consumer fetches it afresh
    /// (<c>Messaging:FetchStallCheckInterval</c>; tests shorten it).</summary>
    public TimeSpan FetchStallCheckInterval { get; set; } = TimeSpan.FromSeconds(15);

    public string GroupId => Namespace + ServiceName;

    public string TopicName(string logicalName) => Namespace + logicalName;

    public string LogicalTopicName(string physicalName) =>
        physicalName.StartsWith(Namespace, StringComparison.Ordinal) ? physicalName[Namespace.Length..] : physicalName;

    public KafkaSecurity Security() =>
        KafkaSecurity.Parse(SecurityProtocol, SaslMechanism, SaslUsername, SaslPassword, SslCaLocation);

    public KafkaConnection Connection() =>
        KafkaConnectionResolver.Resolve(BootstrapServers, BrokerVersion, Security())
        ?? throw new InvalidOperationException(
            "No Kafka cluster is configured: set Messaging:BootstrapServers (and Messaging:BrokerVersion=0.9.0.1 for a 0.9 cluster) or KAFKA_BOOTSTRAP_SERVERS; ./bookstore up does it for the local cluster.");
}
