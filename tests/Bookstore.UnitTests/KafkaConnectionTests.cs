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

    [Fact]
    public void Scram_settings_reach_every_client_the_suite_builds()
    {
        var connection = new MessagingOptions
        {
            BootstrapServers = Servers,
            SecurityProtocol = "SaslSsl",
            SaslMechanism = "ScramSha512",
            SaslUsername = "order-service",
            SaslPassword = "s3cret",
            SslCaLocation = "/etc/kafka/ca.crt",
        }.Connection();
        var configs = new ClientConfig[]
        {
            KafkaClientConfigs.Producer(connection, "p"),
            KafkaClientConfigs.Consumer(connection, "g", "c"),
            KafkaClientConfigs.Admin(connection),
        };
        Assert.All(configs, config =>
        {
            Assert.Equal(SecurityProtocol.SaslSsl, config.SecurityProtocol);
            Assert.Equal(SaslMechanism.ScramSha512, config.SaslMechanism);
            Assert.Equal("order-service", config.SaslUsername);
            Assert.Equal("s3cret", config.SaslPassword);
            Assert.Equal("/etc/kafka/ca.crt", config.SslCaLocation);
        });
    }

    [Theory]
    [InlineData("SaslPlaintext", "ScramSha256", SecurityProtocol.SaslPlaintext, SaslMechanism.ScramSha256)]
    [InlineData("SASL_PLAINTEXT", "SCRAM-SHA-512", SecurityProtocol.SaslPlaintext, SaslMechanism.ScramSha512)]
    [InlineData("saslssl", "plain", SecurityProtocol.SaslSsl, SaslMechanism.Plain)]
    [InlineData("SaslPlaintext", null, SecurityProtocol.SaslPlaintext, SaslMechanism.ScramSha512)]
    public void Security_settings_take_the_enum_names_and_kafkas_spellings(string protocol, string? mechanism, SecurityProtocol expectedProtocol, SaslMechanism expectedMechanism)
    {
        var config = new KafkaConnection(Servers) { Security = KafkaSecurity.Parse(protocol, mechanism, "u", "p", null) }.ApplyTo(new ProducerConfig());
        Assert.Equal(expectedProtocol, config.SecurityProtocol);
        Assert.Equal(expectedMechanism, config.SaslMechanism);
    }

    [Fact]
    public void Ssl_alone_verifies_the_brokers_without_sasl()
    {
        var config = new KafkaConnection(Servers) { Security = KafkaSecurity.Parse("Ssl", null, null, null, "/ca.pem") }.ApplyTo(new AdminClientConfig());
        Assert.Equal(SecurityProtocol.Ssl, config.SecurityProtocol);
        Assert.Equal("/ca.pem", config.SslCaLocation);
        Assert.DoesNotContain(config, kv => kv.Key.StartsWith("sasl.", StringComparison.Ordinal));
    }

    [Fact]
    public void Plaintext_leaves_the_configuration_as_it_was()
    {
        var config = new KafkaConnection(Servers, "0.9.0.1").ApplyTo(new ConsumerConfig());
        Assert.DoesNotContain(config, kv => kv.Key.StartsWith("sasl.", StringComparison.Ordinal) || kv.Key.StartsWith("ssl.", StringComparison.Ordinal) || kv.Key == "security.protocol");
        Assert.Equal(KafkaSecurity.Plaintext, new MessagingOptions { BootstrapServers = Servers }.Connection().Security);
    }

    [Theory]
    [InlineData("SaslPlaintext", null, "u", null, null)]
    [InlineData("SaslSsl", null, null, "p", null)]
    [InlineData("SaslPlaintext", "Gssapi", "u", "p", null)]
    [InlineData("Plaintext", "ScramSha512", null, null, null)]
    [InlineData(null, null, "u", "p", null)]
    [InlineData("SaslPlaintext", null, "u", "p", "/ca.pem")]
    public void Incomplete_or_ignored_security_settings_are_refused(string? protocol, string? mechanism, string? username, string? password, string? ca)
    {
        var connection = new KafkaConnection(Servers) { Security = KafkaSecurity.Parse(protocol, mechanism, username, password, ca) };
        var error = Assert.Throws<InvalidOperationException>(() => KafkaClientConfigs.Producer(connection, "p"));
        Assert.Contains("Messaging:", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SASL")]
    [InlineData("1")]
    [InlineData("tls")]
    public void Unknown_protocols_are_refused_with_the_valid_names(string protocol)
    {
        var error = Assert.Throws<InvalidOperationException>(() => KafkaSecurity.Parse(protocol, null, null, null, null));
        Assert.Contains("SaslSsl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sasl_is_refused_on_a_0_9_broker_which_has_no_scram()
    {
        var connection = new KafkaConnection(Servers, "0.9.0.1") { Security = KafkaSecurity.Parse("SaslPlaintext", null, "u", "p", null) };
        var error = Assert.Throws<InvalidOperationException>(() => KafkaClientConfigs.Consumer(connection, "g", "c"));
        Assert.Contains("0.10.2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_password_appears_in_no_description_nor_error()
    {
        const string Password = "do-not-print-me";
        var connection = new KafkaConnection(Servers) { Security = KafkaSecurity.Parse("SaslSsl", "ScramSha512", "payment-service", Password, null) };
        Assert.DoesNotContain(Password, connection.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Password, connection.Security.ToString(), StringComparison.Ordinal);
        Assert.Contains("payment-service", connection.ToString(), StringComparison.Ordinal);

        var legacy = connection with { BrokerVersion = "0.9.0.1" };
        var error = Assert.Throws<InvalidOperationException>(() => KafkaClientConfigs.Admin(legacy));
        Assert.DoesNotContain(Password, error.Message, StringComparison.Ordinal);
    }
}
