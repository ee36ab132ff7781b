using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bookstore.LocalKafka;
using Bookstore.Messaging;

namespace Bookstore.Cli;

/// <summary><c>./bookstore kafka …</c>: the local three-broker cluster.</summary>
internal static class KafkaCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var zooKeeperPort = new Option<int?>("--zookeeper-port") { Description = $"ZooKeeper's port (default {ClusterLayout.DefaultZooKeeperPort}, or ${ClusterLayout.ZooKeeperPortVariable})" };
        var brokerPorts = new Option<string?>("--broker-ports") { Description = $"the brokers' ports, comma-separated (default 9092,9093,9094, or ${ClusterLayout.BrokerPortsVariable})" };
        var up = new Command("up", "Start ZooKeeper and three brokers on 127.0.0.1, create the topics, wait for every partition leader.") { zooKeeperPort, brokerPorts };
        up.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var ports = parse.GetValue(brokerPorts) is { } text ? ParsePorts(text) : null;
            await Cluster(parse.GetValue(zooKeeperPort), ports).UpAsync(ct);
            PrintStatus(await Cluster().StatusAsync(ct));
        }));

        var json = new Option<bool>("--json") { Description = "print JSON" };
        var status = new Command("status", "Brokers up or down; per topic and partition: leader, replicas, in-sync replicas.") { json };
        status.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var result = await Cluster(quiet: parse.GetValue(json)).StatusAsync(ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, Json));
            }
            else
            {
                PrintStatus(result);
            }
        }));

        var killId = BrokerId();
        var kill = new Command("kill-broker", "Kill broker N hard (SIGKILL) and wait until its partitions have new leaders.") { killId };
        kill.SetAction((parse, ct) => CommandRunner.Run(() => Cluster().KillBrokerAsync(parse.GetValue(killId), ct)));

        var startId = BrokerId();
        var start = new Command("start-broker", "Start broker N again and wait until it is back in every ISR.") { startId };
        start.SetAction((parse, ct) => CommandRunner.Run(() => Cluster().StartBrokerAsync(parse.GetValue(startId), ct)));

        var down = new Command("down", "Stop the brokers, then ZooKeeper; leave no process behind. Data is kept.");
        down.SetAction((_, ct) => CommandRunner.Run(() => Cluster().DownAsync(ct)));

        return new Command("kafka", "The local Apache Kafka cluster (no Docker needed).") { up, status, kill, start, down };
    }

    private static Argument<int> BrokerId() => new("N") { Description = "the broker id: 1, 2 or 3" };

    private static LocalKafkaCluster Cluster(int? zooKeeperPort = null, IReadOnlyList<int>? brokerPorts = null, bool quiet = false) =>
        LocalKafkaCluster.ForRepository(RepositoryRoot.Find(), quiet ? null : Console.WriteLine, zooKeeperPort, brokerPorts);

    private static int[] ParsePorts(string text) =>
        [.. text.Split(',').Select(p => int.TryParse(p.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new LocalKafkaException($"--broker-ports: '{p}' is not a TCP port."))];

    private static void PrintStatus(ClusterStatus status)
    {
        Console.WriteLine();
        Console.WriteLine($"Kafka {status.BrokerVersion ?? "?"} at {status.BootstrapServers}");
        Console.WriteLine($"  {status.ZooKeeper.Name,-10} 127.0.0.1:{status.ZooKeeper.Port,-6} {State(status.ZooKeeper)}");
        foreach (var broker in status.Brokers)
        {
            Console.WriteLine($"  broker {broker.Id,-3} 127.0.0.1:{broker.Port,-6} {State(broker)}");
        }

        if (status.MetadataError is not null)
        {
            Console.WriteLine($"  metadata: {status.MetadataError}");
            return;
        }

        Console.WriteLine();
        Console.WriteLine($"  {"topic",-24} {"part",4} {"leader",6}  {"replicas",-10} {"isr",-10}");
        foreach (var topic in status.Topics)
        {
            if (!topic.Exists)
            {
                Console.WriteLine($"  {topic.Name,-24} MISSING (declared: {topic.DeclaredPartitions} partitions)");
                continue;
            }

            foreach (var p in topic.Partitions)
            {
                var leader = p.HasLeader ? p.Leader.ToString(CultureInfo.InvariantCulture) : "NONE";
                Console.WriteLine($"  {topic.Name,-24} {p.Id,4} {leader,6}  {string.Join(',', p.Replicas),-10} {string.Join(',', p.InSyncReplicas),-10} {p.Error}");
            }
        }
    }

    private static string State(NodeStatus node) => (node.Running, node.Registered) switch
    {
        (true, true) => $"up (pid {node.Pid})",
        (true, false) => $"starting or stuck (pid {node.Pid}, not registered)",
        (false, true) => "down (still registered: its session has not expired yet)",
        _ => "down",
    };
}
