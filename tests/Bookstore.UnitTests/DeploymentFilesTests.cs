using System.Globalization;
using System.Text.RegularExpressions;
using Bookstore.Contracts;
using Bookstore.LocalKafka;
using Bookstore.Messaging;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Bookstore.UnitTests;

/// <summary>No Docker engine or Kubernetes cluster runs in CI: the compose file and the manifests
/// are checked by reading them, against the topic table.</summary>
public sealed partial class DeploymentFilesTests
{
    private static readonly string Root = RepositoryRoot.Find();

    [Fact]
    public void Compose_runs_three_kraft_brokers_of_a_pinned_apache_kafka_on_the_seed_ports()
    {
        var services = Map(Compose()["services"]);
        var brokers = services.Where(s => s.Key.StartsWith("kafka-", StringComparison.Ordinal) && Map(s.Value).ContainsKey("hostname")).ToList();

        Assert.Equal(3, brokers.Count);
        var advertised = new List<string>();
        foreach (var (name, value) in brokers)
        {
            var broker = Map(value);
            Assert.Matches(@"^apache/kafka:\d+\.\d+\.\d+$", (string)broker["image"]);
            Assert.True(broker.ContainsKey("healthcheck"), $"{name} has a health check");
            var environment = Map(broker["environment"]);
            Assert.Equal("broker,controller", environment["KAFKA_PROCESS_ROLES"]);
            Assert.Equal("3", environment["KAFKA_DEFAULT_REPLICATION_FACTOR"]);
            Assert.Equal("2", environment["KAFKA_MIN_INSYNC_REPLICAS"]);
            Assert.Equal("3", environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]);
            Assert.Equal("false", environment["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"]);
            Assert.Equal("false", environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]);
            advertised.Add(((string)environment["KAFKA_ADVERTISED_LISTENERS"]).Split(',').Single(l => l.StartsWith("EXTERNAL://", StringComparison.Ordinal)));
            Assert.All(List(broker["ports"]), port => Assert.StartsWith("127.0.0.1:", (string)port, StringComparison.Ordinal));
        }

        Assert.Equal(ClusterLayout.DefaultBrokerPorts.Select(p => $"EXTERNAL://127.0.0.1:{p}"), advertised.Order());
    }

    [Fact]
    public void Compose_creates_exactly_the_topics_of_the_table()
    {
        var command = string.Join('\n', List(Map(Map(Compose()["services"])["kafka-topics"])["command"]).Cast<string>());
        var created = CreateLine().Matches(command)
            .Select(m => new TopicSpec(
                m.Groups["name"].Value,
                int.Parse(m.Groups["partitions"].Value, CultureInfo.InvariantCulture),
                TimeSpan.FromMilliseconds(long.Parse(m.Groups["retention"].Value, CultureInfo.InvariantCulture)),
                Compacted: m.Groups["policy"].Value == "compact"))
            .ToList();

        Assert.Equal(Topics.All.OrderBy(t => t.Name), created.OrderBy(t => t.Name));
        Assert.Contains("--replication-factor 3", command, StringComparison.Ordinal);
        Assert.Contains("min.insync.replicas=2", command, StringComparison.Ordinal);
    }

    [Fact]
    public void Strimzi_topics_match_the_table()
    {
        var topics = Documents("deploy/k8s/kafka-topics.yaml").Where(d => (string)d["kind"] == "KafkaTopic").ToList();

        Assert.Equal(Topics.All.Select(t => t.Name).Order(), topics.Select(t => (string)Map(t["metadata"])["name"]).Order());
        foreach (var topic in topics)
        {
            var declared = Topics.Get((string)Map(topic["metadata"])["name"]);
            var spec = Map(topic["spec"]);
            var config = Map(spec["config"]);
            Assert.Equal(declared.Partitions.ToString(CultureInfo.InvariantCulture), spec["partitions"]);
            Assert.Equal(declared.ReplicationFactor.ToString(CultureInfo.InvariantCulture), spec["replicas"]);
            Assert.Equal(declared.Configs(), config.ToDictionary(kv => kv.Key, kv => (string)kv.Value));
            Assert.Equal("bookstore", Map(Map(topic["metadata"])["labels"])["strimzi.io/cluster"]);
        }
    }

    [Fact]
    public void Strimzi_cluster_runs_kraft_with_no_loss_settings()
    {
        var documents = Documents("deploy/k8s/kafka-cluster.yaml");
        var pool = Map(documents.Single(d => (string)d["kind"] == "KafkaNodePool")["spec"]);
        var kafka = documents.Single(d => (string)d["kind"] == "Kafka");
        var config = Map(Map(Map(kafka["spec"])["kafka"])["config"]);

        Assert.Equal("3", pool["replicas"]);
        Assert.Equal("enabled", Map(Map(kafka["metadata"])["annotations"])["strimzi.io/kraft"]);
        Assert.Equal("3", config["default.replication.factor"]);
        Assert.Equal("2", config["min.insync.replicas"]);
        Assert.Equal("false", config["unclean.leader.election.enable"]);
        Assert.Equal("false", config["auto.create.topics.enable"]);
    }

    private static Dictionary<object, object> Compose() =>
        Documents("docker-compose.kafka.yml").Single();

    private static List<Dictionary<object, object>> Documents(string relativePath)
    {
        using var reader = new StringReader(File.ReadAllText(Path.Combine(Root, relativePath)));
        var parser = new MergingParser(new Parser(reader));
        var deserializer = new DeserializerBuilder().Build();
        parser.Consume<YamlDotNet.Core.Events.StreamStart>();
        var documents = new List<Dictionary<object, object>>();
        while (parser.Accept<YamlDotNet.Core.Events.DocumentStart>(out _))
        {
            if (deserializer.Deserialize<Dictionary<object, object>?>(parser) is { } document)
            {
                documents.Add(document);
            }
        }

        return documents;
    }

    private static Dictionary<string, object> Map(object value) =>
        ((Dictionary<object, object>)value).ToDictionary(kv => (string)kv.Key, kv => kv.Value);

    private static List<object> List(object value) => (List<object>)value;

    [GeneratedRegex(@"^\s*create (?<name>[a-z-]+) (?<partitions>\d+) (?<policy>delete|compact) (?<retention>\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex CreateLine();
}
