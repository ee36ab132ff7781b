using System.Diagnostics;
using System.Globalization;
using Bookstore.Contracts;
using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>A real Apache Kafka cluster on this machine, without Docker: one ZooKeeper and three
/// brokers as separate JVMs on loopback, their data under <c>.bookstore/kafka/</c>.</summary>
public sealed class LocalKafkaCluster
{
    /// <summary>Fewer than the broker default (50): a local cluster creates them faster.</summary>
    public const int OffsetsTopicPartitions = 12;

    private static readonly TimeSpan ZooKeeperStartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan BrokerStartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(5);

    private readonly Action<string> _report;
    private readonly Dictionary<int, long> _logLengthAtStart = [];

    public LocalKafkaCluster(ClusterLayout layout, Action<string>? report = null)
    {
        Layout = layout ?? throw new ArgumentNullException(nameof(layout));
        _report = report ?? (_ => { });
    }

    public ClusterLayout Layout { get; }

    /// <summary>The offsets topic, created explicitly with three replicas: 0.9 would otherwise
    /// create it on the first group request with as many replicas as brokers are alive then.</summary>
    public static TopicSpec OffsetsTopic { get; } = new("__consumer_offsets", OffsetsTopicPartitions, TimeSpan.FromDays(7), Compacted: true);

    public static LocalKafkaCluster ForRepository(string repositoryRoot, Action<string>? report = null, int? zooKeeperPort = null, IReadOnlyList<int>? brokerPorts = null) =>
        new(ClusterLayout.Resolve(repositoryRoot, zooKeeperPort, brokerPorts), report);

    /// <summary>Starts what is not running, creates the topics of the table that are missing, and
    /// returns once every partition has a leader. Harmless when everything already runs.</summary>
    /// <returns>Whether this call started any process.</returns>
    public async Task<bool> UpAsync(CancellationToken cancellationToken = default)
    {
        var java = JavaRuntime.Find();
        var distribution = await KafkaDistribution.AcquireAsync(Layout.RepositoryRoot, _report, cancellationToken);
        var started = false;
        var clock = Stopwatch.StartNew();
        foreach (var node in Layout.Nodes.Where(n => DetachedProcess.Find(n.PidFile, n.Marker) is null))
        {
            RequireFreePort(node);
        }

        started |= await EnsureZooKeeperAsync(java, distribution, cancellationToken);
        started |= await EnsureBrokersAsync(java, distribution, Layout.Brokers, cancellationToken);

        var state = Layout.State(distribution.Version);
        state.Write(Layout.RepositoryRoot);
        var connection = state.Connection;

        using (var metadata = new ClusterMetadataReader(connection))
        {
            await WaitForAsync(
                "every broker to appear in the cluster's metadata",
                () => metadata.TryRead(MetadataTimeout) is { } s && Layout.Brokers.All(b => s.Brokers.Any(x => x.Id == b.Id)),
                TimeSpan.FromSeconds(30),
                cancellationToken);
        }

        await CreateTopicsAsync([OffsetsTopic, .. Topics.All], cancellationToken);
        await WaitUntilInSyncAsync(java, distribution, connection, cancellationToken);
        if (started)
        {
            _report($"cluster up in {clock.Elapsed.TotalSeconds:0.0} s: {connection}");
        }
        else
        {
            _report($"cluster already running: {connection}");
        }

        return started;
    }

    /// <summary>Creates the topics that do not exist yet (through Kafka's own TopicCommand: 0.9
    /// has no CreateTopics API) and waits until each of their partitions has a leader.</summary>
    public async Task CreateTopicsAsync(IReadOnlyCollection<TopicSpec> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        using var metadata = new ClusterMetadataReader(Connection());
        var snapshot = ReadSnapshot(metadata);
        var missing = topics.Where(t => snapshot.Topic(t.Name) is null).Select(t => t.CappedTo(Layout.Brokers.Count)).ToList();
        foreach (var existing in topics.Select(t => (Spec: t, Info: snapshot.Topic(t.Name))).Where(x => x.Info is not null))
        {
            if (existing.Info!.Partitions.Count != existing.Spec.Partitions)
            {
                _report($"warning: {existing.Spec.Name} has {existing.Info.Partitions.Count} partitions, the table declares {existing.Spec.Partitions}");
            }
        }

        if (missing.Count > 0)
        {
            var distribution = await KafkaDistribution.AcquireAsync(Layout.RepositoryRoot, _report, cancellationToken);
            var java = JavaRuntime.Find();
            _report($"creating {missing.Count} topic(s): {string.Join(", ", missing.Select(t => t.Name))}");

            await TwoAtATimeAsync(missing, topic => TopicCommand.CreateAsync(java, distribution, Layout, topic, cancellationToken), cancellationToken);
        }

        var names = topics.Select(t => t.Name).ToHashSet();
        await WaitForAsync(
            "every partition to have a leader",
            () => metadata.TryRead(MetadataTimeout) is { } s
                && names.All(n => s.Topic(n) is { } t && t.Partitions.Count > 0 && t.Partitions.All(p => p.HasLeader)),
            TimeSpan.FromSeconds(60),
            cancellationToken);
    }

    /// <summary>Deletes the topics (test topics, typically) with one TopicCommand: 0.9's takes a
    /// regular expression, and each run of it is a JVM start.</summary>
    public async Task DeleteTopicsAsync(IReadOnlyCollection<string> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        if (topics.Count == 0)
        {
            return;
        }

        var distribution = await KafkaDistribution.AcquireAsync(Layout.RepositoryRoot, _report, cancellationToken);
        var pattern = "(" + string.Join('|', topics.Select(t => System.Text.RegularExpressions.Regex.Escape(t))) + ")";
        await TopicCommand.DeleteAsync(JavaRuntime.Find(), distribution, Layout, pattern, cancellationToken);
    }

    public async Task<ClusterStatus> StatusAsync(CancellationToken cancellationToken = default)
    {
        var registered = await ZooKeeperProbe.RegisteredBrokersAsync(Layout.ZooKeeper.Port, cancellationToken);
        var zkPid = DetachedProcess.Find(Layout.ZooKeeper.PidFile, Layout.ZooKeeper.Marker);
        var zooKeeper = new NodeStatus(Layout.ZooKeeper.Name, 0, Layout.ZooKeeper.Port, zkPid, zkPid is not null, registered is not null);
        var brokers = Layout.Brokers
            .Select(b => (Node: b, Pid: DetachedProcess.Find(b.PidFile, b.Marker)))
            .Select(x => new NodeStatus(x.Node.Name, x.Node.Id, x.Node.Port, x.Pid, x.Pid is not null, registered?.Contains(x.Node.Id) == true))
            .ToList();

        var state = LocalClusterState.TryRead(Layout.RepositoryRoot);
        ClusterSnapshot? snapshot = null;
        string? error = null;
        if (brokers.Any(b => b.Running))
        {
            try
            {
                using var metadata = new ClusterMetadataReader(Connection());
                snapshot = ReadSnapshot(metadata);
            }
            catch (LocalKafkaException e)
            {
                error = e.Message;
            }
        }
        else
        {
            error = "no broker is running";
        }

        var declared = Topics.All.ToDictionary(t => t.Name);
        var topics = (snapshot?.Topics ?? [])
            .Select(t => new TopicStatus(t.Name, declared.ContainsKey(t.Name), declared.GetValueOrDefault(t.Name)?.Partitions, declared.GetValueOrDefault(t.Name)?.ReplicationFactor, t.Partitions))
            .Concat(Topics.All.Where(t => snapshot?.Topic(t.Name) is null).Select(t => new TopicStatus(t.Name, true, t.Partitions, t.ReplicationFactor, [])))
            .OrderBy(t => !t.Declared).ThenBy(t => t.Name, StringComparer.Ordinal)
            .ToList();
        return new ClusterStatus(Layout.BootstrapServers, state?.BrokerVersion, zooKeeper, brokers, topics, error);
    }

    /// <summary>SIGKILLs broker <paramref name="id"/>, then waits for what a crash leads to:
    /// ZooKeeper expires its session, its partitions elect new leaders, the ISR shrinks.</summary>
    public async Task KillBrokerAsync(int id, CancellationToken cancellationToken = default)
    {
        var broker = Layout.Broker(id);
        var pid = DetachedProcess.Find(broker.PidFile, broker.Marker) ?? throw new LocalKafkaException($"Broker {id} is not running.");
        var clock = Stopwatch.StartNew();
        DetachedProcess.Kill(pid);
        await DetachedProcess.WaitForExitAsync(pid, TimeSpan.FromSeconds(10), cancellationToken);
        File.Delete(broker.PidFile);
        _report($"broker {id} (pid {pid}) killed with SIGKILL");

        await WaitForAsync(
            $"ZooKeeper to expire broker {id}'s session",
            async ct => await ZooKeeperProbe.RegisteredBrokersAsync(Layout.ZooKeeper.Port, ct) is { } ids && !ids.Contains(id),
            TimeSpan.FromSeconds(30),
            cancellationToken);
        _report($"ZooKeeper dropped broker {id} after {clock.Elapsed.TotalSeconds:0.0} s");

        using var metadata = new ClusterMetadataReader(Connection());
        await WaitForAsync(
            $"every partition to have a leader other than broker {id}",
            () => metadata.TryRead(MetadataTimeout) is { } s && s.Topics.All(t => t.Partitions.All(p => p.HasLeader && p.Leader != id)),
            TimeSpan.FromSeconds(30),
            cancellationToken);
        _report($"every partition has a leader after {clock.Elapsed.TotalSeconds:0.0} s");

        // Until the leaders drop the dead replica from the ISR (replica.lag.time.max.ms), an
        // acks=all write waits for it; say when that is over, and do not fail if it takes long.
        var shrunk = await Poll.UntilAsync(
            () => metadata.TryRead(MetadataTimeout) is { } s && s.Topics.All(t => t.Partitions.All(p => !p.InSyncReplicas.Contains(id))),
            TimeSpan.FromSeconds(30),
            cancellationToken: cancellationToken);
        _report(shrunk
            ? $"no in-sync replica set in the metadata lists broker {id} after {clock.Elapsed.TotalSeconds:0.0} s"
            : $"after {clock.Elapsed.TotalSeconds:0.0} s some in-sync replica sets still list broker {id}; acks=all writes to them wait until it is dropped");
    }

    /// <summary>Starts broker <paramref name="id"/> again and waits until it is back in every ISR.</summary>
    public async Task StartBrokerAsync(int id, CancellationToken cancellationToken = default)
    {
        var broker = Layout.Broker(id);
        if (DetachedProcess.Find(broker.PidFile, broker.Marker) is { } running)
        {
            _report($"broker {id} is already running (pid {running})");
            return;
        }

        if (DetachedProcess.Find(Layout.ZooKeeper.PidFile, Layout.ZooKeeper.Marker) is null)
        {
            throw new LocalKafkaException("ZooKeeper is not running: start the whole cluster with ./bookstore kafka up.");
        }

        var java = JavaRuntime.Find();
        var distribution = await KafkaDistribution.AcquireAsync(Layout.RepositoryRoot, _report, cancellationToken);
        var clock = Stopwatch.StartNew();
        await EnsureBrokersAsync(java, distribution, [broker], cancellationToken);
        _report($"broker {id} registered in ZooKeeper after {clock.Elapsed.TotalSeconds:0.0} s");

        await WaitUntilInSyncAsync(java, distribution, Connection(), cancellationToken);
        _report($"broker {id} is back in every ISR after {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Stops the brokers, then ZooKeeper (a broker whose ZooKeeper is gone hangs in
    /// controlled shutdown), each with SIGTERM and SIGKILL after a deadline; then makes sure no
    /// process of this cluster is left.</summary>
    public async Task DownAsync(CancellationToken cancellationToken = default)
    {
        // One at a time, so that each controlled shutdown hands its partitions to brokers that stay
        // up and in sync: brokers stopped together leave replicas that diverge, which 0.9 refuses
        // to truncate on the next start.
        foreach (var broker in Layout.Brokers.Reverse())
        {
            if (DetachedProcess.Find(broker.PidFile, broker.Marker) is { } pid)
            {
                var clean = await DetachedProcess.StopAsync(pid, TimeSpan.FromSeconds(30), cancellationToken);
                _report($"{broker.Name} stopped{(clean ? string.Empty : " (SIGKILL after 30 s)")}");
            }
        }

        if (DetachedProcess.Find(Layout.ZooKeeper.PidFile, Layout.ZooKeeper.Marker) is { } zk)
        {
            var clean = await DetachedProcess.StopAsync(zk, TimeSpan.FromSeconds(15), cancellationToken);
            _report($"zookeeper stopped{(clean ? string.Empty : " (SIGKILL after 15 s)")}");
        }

        foreach (var node in Layout.Nodes)
        {
            foreach (var stray in DetachedProcess.FindByMarker(node.Marker))
            {
                DetachedProcess.Kill(stray);
                await DetachedProcess.WaitForExitAsync(stray, TimeSpan.FromSeconds(10), cancellationToken);
                _report($"{node.Name}: killed a leftover process {stray}");
            }

            File.Delete(node.PidFile);
        }

        _report("cluster down");
    }

    private KafkaConnection Connection() =>
        (LocalClusterState.TryRead(Layout.RepositoryRoot)
            ?? throw new LocalKafkaException("The local cluster has never been started: run ./bookstore kafka up.")).Connection;

    private static ClusterSnapshot ReadSnapshot(ClusterMetadataReader metadata)
    {
        try
        {
            return metadata.Read(MetadataTimeout);
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            throw new LocalKafkaException($"No broker at {metadata.BootstrapServers} answered: {e.Error.Reason}", e);
        }
    }

    private async Task<bool> EnsureZooKeeperAsync(string java, KafkaDistribution distribution, CancellationToken cancellationToken)
    {
        var node = Layout.ZooKeeper;
        if (DetachedProcess.Find(node.PidFile, node.Marker) is not null)
        {
            return false;
        }

        RequireFreePort(node);
        Directory.CreateDirectory(node.DataDirectory);
        await File.WriteAllTextAsync(node.ConfigFile, Layout.ZooKeeperProperties(), cancellationToken);
        var pid = DetachedProcess.Start(node.LogFile, node.PidFile, java, JvmArguments(node, distribution, "-Xmx128m", "org.apache.zookeeper.server.quorum.QuorumPeerMain", node.ConfigFile));
        _report($"zookeeper starting on 127.0.0.1:{node.Port} (pid {pid})");

        if (!await Poll.UntilAsync(async ct => !DetachedProcess.IsAlive(pid) || await ZooKeeperProbe.IsServingAsync(node.Port, ct), ZooKeeperStartTimeout, cancellationToken: cancellationToken)
            || !DetachedProcess.IsAlive(pid))
        {
            await FailAsync(node, pid, "did not start serving", cancellationToken);
        }

        return true;
    }

    private async Task<bool> EnsureBrokersAsync(string java, KafkaDistribution distribution, IReadOnlyList<NodeLayout> brokers, CancellationToken cancellationToken)
    {
        var toStart = brokers.Where(b => DetachedProcess.Find(b.PidFile, b.Marker) is null).ToList();
        foreach (var broker in toStart)
        {
            RequireFreePort(broker);
        }

        var pids = new Dictionary<NodeLayout, int>();
        foreach (var broker in toStart)
        {
            Directory.CreateDirectory(broker.DataDirectory);
            Directory.CreateDirectory(broker.LogsDirectory);
            await File.WriteAllTextAsync(broker.ConfigFile, Layout.BrokerProperties(broker, OffsetsTopicPartitions), cancellationToken);
            _logLengthAtStart[broker.Id] = File.Exists(broker.LogFile) ? new FileInfo(broker.LogFile).Length : 0;
            pids[broker] = DetachedProcess.Start(broker.LogFile, broker.PidFile, java, JvmArguments(broker, distribution, "-Xmx512m", "kafka.Kafka", broker.ConfigFile));
            _report($"{broker.Name} starting on 127.0.0.1:{broker.Port} (pid {pids[broker]})");
        }

        // A broker that cannot bind its port logs FATAL and stays alive: registration in
        // ZooKeeper, not the process, says it is up.
        IReadOnlySet<int> registered = new HashSet<int>();
        await Poll.UntilAsync(
            async ct =>
            {
                registered = await ZooKeeperProbe.RegisteredBrokersAsync(Layout.ZooKeeper.Port, ct) ?? new HashSet<int>();
                return pids.All(p => registered.Contains(p.Key.Id) || !DetachedProcess.IsAlive(p.Value));
            },
            BrokerStartTimeout,
            cancellationToken: cancellationToken);

        foreach (var (broker, pid) in pids)
        {
            if (!registered.Contains(broker.Id) || !DetachedProcess.IsAlive(pid))
            {
                await FailAsync(broker, pid, "did not register in ZooKeeper", cancellationToken);
            }
        }

        return pids.Count > 0;
    }

    /// <summary>Waits until every broker is in the in-sync replicas of every partition it holds.
    /// A restarted 0.9 broker whose log ends beyond its new leader's (records it had appended but
    /// that were never acknowledged, since acks=all needs the in-sync replicas) halts instead of
    /// truncating when unclean leader election is off (KAFKA-3410). Its copy of that topic is then
    /// discarded and re-replicated from the leader, once: the in-sync replicas hold every
    /// acknowledged record.</summary>
    private async Task WaitUntilInSyncAsync(string java, KafkaDistribution distribution, KafkaConnection connection, CancellationToken cancellationToken)
    {
        var recovered = new HashSet<int>();
        var clock = Stopwatch.StartNew();
        using var metadata = new ClusterMetadataReader(connection);
        while (true)
        {
            foreach (var broker in Layout.Brokers.Where(b => DetachedProcess.Find(b.PidFile, b.Marker) is null))
            {
                var halted = TruncationHalt(broker);
                if (halted is null || !recovered.Add(broker.Id))
                {
                    throw new LocalKafkaException($"{broker.Name} exited. Last lines of {broker.LogFile}:\n{DetachedProcess.Tail(broker.LogFile, 25)}");
                }

                _report($"{broker.Name} halted on un-acknowledged records of {halted} that its new leader does not have (Kafka 0.9, KAFKA-3410); re-replicating its copy of {halted} from the leader");
                await WaitForAsync(
                    $"ZooKeeper to drop the halted {broker.Name}",
                    async ct => await ZooKeeperProbe.RegisteredBrokersAsync(Layout.ZooKeeper.Port, ct) is { } ids && !ids.Contains(broker.Id),
                    TimeSpan.FromSeconds(30),
                    cancellationToken);
                foreach (var copy in Directory.EnumerateDirectories(broker.DataDirectory, $"{halted}-*"))
                {
                    Directory.Delete(copy, recursive: true);
                }

                await EnsureBrokersAsync(java, distribution, [broker], cancellationToken);
            }

            if (metadata.TryRead(MetadataTimeout) is { } snapshot
                && Layout.Brokers.All(b => snapshot.Brokers.Any(x => x.Id == b.Id))
                && snapshot.Topics.All(t => t.Partitions.All(p => p.HasLeader && p.InSyncReplicas.Order().SequenceEqual(p.Replicas.Order()))))
            {
                return;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(90))
            {
                throw new LocalKafkaException("Timed out after 90 s waiting for every broker to be in sync on every partition (see ./bookstore kafka status).");
            }

            await Task.Delay(250, cancellationToken);
        }
    }

    /// <summary>The topic a broker halted on since its last start, if it halted on 0.9's truncation check.</summary>
    private string? TruncationHalt(NodeLayout broker)
    {
        if (!File.Exists(broker.LogFile))
        {
            return null;
        }

        using var stream = new FileStream(broker.LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(_logLengthAtStart.GetValueOrDefault(broker.Id), SeekOrigin.Begin);
        var sinceStart = new StreamReader(stream).ReadToEnd();
        var match = System.Text.RegularExpressions.Regex.Match(sinceStart, @"Halting because log truncation is not allowed for topic (?<topic>[A-Za-z0-9._-]+),");
        return match.Success ? match.Groups["topic"].Value : null;
    }

    private static void RequireFreePort(NodeLayout node)
    {
        if (!DetachedProcess.IsPortFree(node.Port))
        {
            throw new LocalKafkaException(
                $"Port {node.Port} for {node.Name} is taken by another process (see: ss -ltnp 'sport = :{node.Port}'). " +
                $"Stop it, or choose other ports with {ClusterLayout.BrokerPortsVariable}=9192,9193,9194 and {ClusterLayout.ZooKeeperPortVariable}=2281.");
        }
    }

    private static async Task FailAsync(NodeLayout node, int pid, string what, CancellationToken cancellationToken)
    {
        if (DetachedProcess.IsAlive(pid))
        {
            DetachedProcess.Kill(pid);
            await DetachedProcess.WaitForExitAsync(pid, TimeSpan.FromSeconds(10), cancellationToken);
        }

        File.Delete(node.PidFile);
        throw new LocalKafkaException($"{node.Name} {what}; it was stopped. Last lines of {node.LogFile}:\n{DetachedProcess.Tail(node.LogFile, 25)}");
    }

    /// <summary>Each TopicCommand is a JVM: two at a time keeps a 2-core machine responsive.</summary>
    private static async Task TwoAtATimeAsync<T>(IEnumerable<T> items, Func<T, Task> action, CancellationToken cancellationToken)
    {
        using var gate = new SemaphoreSlim(2);
        await Task.WhenAll(items.Select(async item =>
        {
            await gate.WaitAsync(cancellationToken);
            try
            {
                await action(item);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    /// <summary>The JVM's options: <paramref name="heap"/>, C1 only, then <c>BOOKSTORE_KAFKA_OPTS</c>
    /// (split on white space), which may override either. Not Kafka's own <c>KAFKA_OPTS</c>: one set
    /// for another cluster (a JMX port, JAAS) would reach all four JVMs here.</summary>
    /// <remarks>C1 only (<c>-XX:TieredStopAtLevel=1</c>): on a small machine running three brokers, C2
    /// kept compiling for many minutes after start, up to 60 % of a broker's CPU at 40 orders/s, and
    /// its faster code never paid that back. Measured (2 interleaved fresh suites each, after a
    /// warm-up): the brokers' CPU per order 2.31 → 1.47 ms, 362 → 430 orders/s, light-load p99
    /// 531 → 241 ms. The serial collector instead of G1 was slower (1.82 ms, 367 orders/s).
    /// No perf data (<c>-XX:-UsePerfData</c>): the JVM otherwise samples its counters every 50 ms for
    /// <c>jstat</c>; in three idle brokers with no client its thread took 520 ms of CPU in 120 s
    /// (0.4 % of a core), more than any of Kafka's own threads but the pollers (<c>jcmd PID</c> still
    /// attaches).</remarks>
    private static List<string> JvmArguments(NodeLayout node, KafkaDistribution distribution, string heap, string mainClass, string config) =>
    [
        heap,
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        .. (Environment.GetEnvironmentVariable("BOOKSTORE_KAFKA_OPTS") ?? string.Empty).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries),
        node.Marker,
        "-Djava.awt.headless=true",
        $"-Dlog4j.configuration=file:{distribution.Log4jConfig}",
        $"-Dkafka.logs.dir={node.LogsDirectory}",
        "-cp",
        distribution.ClassPath,
        mainClass,
        config,
    ];

    private static async Task WaitForAsync(string what, Func<bool> condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!await Poll.UntilAsync(condition, timeout, cancellationToken: cancellationToken))
        {
            throw new LocalKafkaException($"Timed out after {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s waiting for {what}.");
        }
    }

    private static async Task WaitForAsync(string what, Func<CancellationToken, Task<bool>> condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!await Poll.UntilAsync(condition, timeout, cancellationToken: cancellationToken))
        {
            throw new LocalKafkaException($"Timed out after {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s waiting for {what}.");
        }
    }
}
