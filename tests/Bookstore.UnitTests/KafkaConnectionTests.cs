using Bookstore.Messaging;
using Confluent.Kafka;

namespace Bookstore.UnitTests;

public sealed class KafkaConnectionTests
{
    private const string Servers = "127.0.0.1:9092";

    [Theory]
    [InlineData("0.9.0.1", true)]
    [InlineData("0.9.0.0", true)]
    [InlineData("0.10.0.0", false)]
    [InlineData("2.8.2", false)]
    [InlineData("4.1.0", false)]
    [InlineData(null, false)]
    public void Only_brokers_before_0_10_are_legacy(string? version, bool legacy) =>
        Assert.Equal(legacy, new KafkaConnection(Servers, version).IsLegacyBroker);

    [Fact]
    public void A_legacy_broker_gets_the_protocol_pinning()
    {
        var config = new KafkaConnection(Servers, "0.9.0.1").ApplyTo(new ConsumerConfig());
        Assert.Equal(Servers, config.BootstrapServers);
        Assert.False(config.ApiVersionRequest);
        Assert.Equal("0.9.0.1", config.BrokerVersionFallback);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("3.9.1")]
    public void A_modern_broker_never_gets_the_legacy_settings(string? version)
    {
        var connection = new KafkaConnection(Servers, version);
        var configs = new ClientConfig[]
        {
            KafkaClientConfigs.Producer(connection, "p"),
            KafkaClientConfigs.Consumer(connection, "g", "c"),
            KafkaClientConfigs.Admin(connection),
        };
        Assert.All(configs, config =>
        {
            Assert.DoesNotContain(config, kv => kv.Key is "api.version.request" or "broker.version.fallback");
            Assert.Equal(Servers, config.BootstrapServers);
        });
    }

    [Fact]
    public void The_producer_waits_for_all_in_sync_replicas_and_keeps_order_through_retries()
    {
        var legacy = KafkaClientConfigs.Producer(new KafkaConnection(Servers, "0.9.0.1"), "p");
        Assert.Equal(Acks.All, legacy.Acks);
        Assert.Equal(1, legacy.MaxInFlight);
        Assert.NotEqual(true, legacy.EnableIdempotence);

        var modern = KafkaClientConfigs.Producer(new KafkaConnection(Servers), "p");
        Assert.Equal(Acks.All, modern.Acks);
        Assert.True(modern.EnableIdempotence);
    }

    [Fact]
    public void Consumers_commit_explicitly_and_notice_a_dead_member_within_seconds()
    {
        var config = KafkaClientConfigs.Consumer(new KafkaConnection(Servers, "0.9.0.1"), "inventory-service", "inventory-1");
        Assert.False(config.EnableAutoCommit);
        Assert.False(config.EnableAutoOffsetStore);
        Assert.Equal(PartitionAssignmentStrategy.Range, config.PartitionAssignmentStrategy);
        Assert.Equal("inventory-service", config.GroupId);
        Assert.True(config.SessionTimeoutMs <= 10_000);
        Assert.True(config.FetchQueueBackoffMs < 100);
    }

    [Theory]
    [InlineData("0.9.0.1", 0, 9)]
    [InlineData("3.9.1", 3, 9)]
    [InlineData("4.1.0-rc1", 4, 1)]
    public void Versions_parse(string text, int major, int minor)
    {
        var version = KafkaConnection.ParseVersion(text);
        Assert.Equal((major, minor), (version.Major, version.Minor));
    }

    [Theory]
    [InlineData("latest")]
    [InlineData("9")]
    [InlineData("0.9.x")]
    public void Nonsense_versions_are_rejected_with_a_clear_message(string text)
    {
        var error = Assert.Throws<FormatException>(() => KafkaConnection.ParseVersion(text));
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
    }
}
