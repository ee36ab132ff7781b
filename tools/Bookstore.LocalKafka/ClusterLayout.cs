using System.Globalization;
using System.Text;
using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>Where the local cluster's processes listen and keep their files: one folder per node
/// under <c>.bookstore/kafka/</c> (git-ignored), so data survives restarts.</summary>
public sealed class ClusterLayout
{
    public const int DefaultZooKeeperPort = 2181;
    public static readonly IReadOnlyList<int> DefaultBrokerPorts = [9092, 9093, 9094];

    /// <summary>e.g. <c>9092,9093,9094</c>; broker ids are 1, 2, 3 in that order.</summary>
    public const string BrokerPortsVariable = "BOOKSTORE_KAFKA_PORTS";
    public const string ZooKeeperPortVariable = "BOOKSTORE_ZOOKEEPER_PORT";

    public ClusterLayout(string repositoryRoot, int zooKeeperPort, IReadOnlyList<int> brokerPorts)
    {
        ArgumentNullException.ThrowIfNull(brokerPorts);
        if (brokerPorts.Count == 0 || brokerPorts.Distinct().Count() != brokerPorts.Count || brokerPorts.Contains(zooKeeperPort))
        {
            throw new LocalKafkaException($"Ports must be distinct: ZooKeeper {zooKeeperPort}, brokers {string.Join(",", brokerPorts)}.");
        }

        RepositoryRoot = repositoryRoot;
        Home = Path.Combine(repositoryRoot, ".bookstore", "kafka");
        ZooKeeper = new NodeLayout("zookeeper", 0, zooKeeperPort, Path.Combine(Home, "zookeeper"));
        Brokers = [.. brokerPorts.Select((port, i) => new NodeLayout($"broker-{i + 1}", i + 1, port, Path.Combine(Home, $"broker-{i + 1}")))];
    }

    public string RepositoryRoot { get; }

    public string Home { get; }

    public NodeLayout ZooKeeper { get; }

    public IReadOnlyList<NodeLayout> Brokers { get; }

    public IEnumerable<NodeLayout> Nodes => [ZooKeeper, .. Brokers];

    public string ZooKeeperConnect => $"127.0.0.1:{ZooKeeper.Port}";

    public string BootstrapServers => string.Join(',', Brokers.Select(b => $"127.0.0.1:{b.Port}"));

    /// <summary>The ports recorded by the last <c>kafka up</c>; else the environment; else the seed's ports.</summary>
    public static ClusterLayout Resolve(string repositoryRoot, int? zooKeeperPort = null, IReadOnlyList<int>? brokerPorts = null)
    {
        var recorded = LocalClusterState.TryRead(repositoryRoot);
        var zk = zooKeeperPort
            ?? ParsePort(Environment.GetEnvironmentVariable(ZooKeeperPortVariable), ZooKeeperPortVariable)
            ?? (recorded is null ? null : ParsePort(recorded.ZooKeeper.Split(':')[^1], "cluster.json"))
            ?? DefaultZooKeeperPort;
        var brokers = brokerPorts
            ?? ParsePorts(Environment.GetEnvironmentVariable(BrokerPortsVariable), BrokerPortsVariable)
            ?? recorded?.Brokers.OrderBy(b => b.Id).Select(b => b.Port).ToArray()
            ?? DefaultBrokerPorts;
        return new ClusterLayout(repositoryRoot, zk, brokers);
    }

    public NodeLayout Broker(int id) =>
        Brokers.FirstOrDefault(b => b.Id == id)
        ?? throw new LocalKafkaException($"There is no broker {id}: the brokers are {string.Join(", ", Brokers.Select(b => b.Id))}.");

    public LocalClusterState State(string brokerVersion) =>
        new(BootstrapServers, brokerVersion, ZooKeeperConnect, [.. Brokers.Select(b => new LocalBrokerState(b.Id, b.Port))]);

    public string ZooKeeperProperties() => Properties(new()
    {
        ["dataDir"] = ZooKeeper.DataDirectory,
        ["clientPort"] = Invariant(ZooKeeper.Port),
        ["clientPortAddress"] = "127.0.0.1",
        // Sessions may be as short as two ticks: the brokers' 3 s below needs ticks of at most 1.5 s.
        ["tickTime"] = "500",
        ["maxClientCnxns"] = "0",
    });

    /// <summary>A broker that loses no acknowledged write: three replicas, two in sync for
    /// <c>acks=all</c>, and no out-of-sync replica ever elected leader (0.9's default allows it).</summary>
    public string BrokerProperties(NodeLayout broker, int offsetsTopicPartitions)
    {
        ArgumentNullException.ThrowIfNull(broker);
        var replicas = Invariant(Math.Min(3, Brokers.Count));
        var listener = $"PLAINTEXT://127.0.0.1:{broker.Port}";
        return Properties(new()
        {
            ["broker.id"] = Invariant(broker.Id),
            // Both, or the broker advertises its host name and port 9092 to clients.
            ["listeners"] = listener,
            ["advertised.listeners"] = listener,
            ["log.dirs"] = broker.DataDirectory,
            ["zookeeper.connect"] = ZooKeeperConnect,
            // A killed broker's partitions move only once ZooKeeper expires its session: 3 s instead
            // of 0.9's 6 s halves the stall a broker crash causes. Still ten heartbeats' worth of
            // margin (the client pings every third of it) for a JVM pause on a loaded machine.
            ["zookeeper.session.timeout.ms"] = "3000",
            ["zookeeper.connection.timeout.ms"] = "10000",
            ["default.replication.factor"] = replicas,
            ["offsets.topic.replication.factor"] = replicas,
            ["offsets.topic.num.partitions"] = Invariant(offsetsTopicPartitions),
            ["min.insync.replicas"] = Invariant(Math.Min(2, Brokers.Count)),
            ["unclean.leader.election.enable"] = "false",
            // Topics come from the table, never from a typo in a client.
            ["auto.create.topics.enable"] = "false",
            ["delete.topic.enable"] = "true",
            // librdkafka's default session timeout (45 s) is above 0.9's limit (30 s).
            ["group.max.session.timeout.ms"] = "300000",
            ["log.cleaner.enable"] = "true",
            ["log.cleaner.dedupe.buffer.size"] = Invariant(16 * 1024 * 1024),
            ["replica.lag.time.max.ms"] = "10000",
            // A follower's fetch waits on the leader until a record arrives, so acks=all is not
            // slowed; at idle each follower asks every 3 s instead of 0.5 s (a broker pays per
            // request). Well under replica.lag.time.max.ms, so a quiet follower stays in sync.
            ["replica.fetch.wait.max.ms"] = "3000",
            ["controlled.shutdown.enable"] = "true",
            ["controlled.shutdown.max.retries"] = "2",
            ["controlled.shutdown.retry.backoff.ms"] = "1000",
            ["num.partitions"] = "6",
            // 0.9's 3 network threads and 8 request handlers stay, although each wakes every 300 ms to
            // poll: with 1 and 2 the three idle brokers spent 3.4 → 2.5 % of a core (no client), but
            // a raw producer's 119k, 117k records/s fell to 89k, 92k and the suite's 657, 577 orders/s
            // to 579, 514 (2 interleaved fresh suites each).
            ["log.retention.hours"] = "168",
            // 0.9 forgets a committed offset a day after its last commit, and a quiet partition's
            // offset is not committed again: the group would then start over from the earliest
            // record. Kept longer than the processed-event ids (about 15 days), so it never does.
            ["offsets.retention.minutes"] = Invariant(30 * 24 * 60),
        });
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Properties(Dictionary<string, string> values)
    {
        var text = new StringBuilder("# written by ./bookstore kafka up; edits are overwritten\n");
        foreach (var (key, value) in values)
        {
            text.Append(key).Append('=').Append(value.Replace("\\", "\\\\", StringComparison.Ordinal)).Append('\n');
        }

        return text.ToString();
    }

    private static int? ParsePort(string? text, string source)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new LocalKafkaException($"{source}: '{text}' is not a TCP port.");
        }

        return port;
    }

    private static int[]? ParsePorts(string? text, string source) =>
        string.IsNullOrWhiteSpace(text) ? null : [.. text.Split(',').Select(p => ParsePort(p, source) ?? throw new LocalKafkaException($"{source}: empty port in '{text}'."))];
}

/// <summary>One process of the cluster: ZooKeeper (id 0) or broker N.</summary>
public sealed record NodeLayout(string Name, int Id, int Port, string Directory)
{
    public string DataDirectory => Path.Combine(Directory, "data");

    public string ConfigFile => Path.Combine(Directory, Name == "zookeeper" ? "zookeeper.properties" : "server.properties");

    public string LogFile => Path.Combine(Directory, $"{Name}.log");

    public string PidFile => Path.Combine(Directory, $"{Name}.pid");

    public string LogsDirectory => Path.Combine(Directory, "logs");

    /// <summary>Put on the java command line so our processes can be told from any other java.</summary>
    public string Marker => $"-Dbookstore.node={Directory}";
}
