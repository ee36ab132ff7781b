using Bookstore.Contracts;
using Bookstore.Messaging;
using Testcontainers.Kafka;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>A modern cluster the tests cannot stop brokers of: a user's own (by address) or a
/// Testcontainers broker. Topics come from the CreateTopics API.</summary>
internal sealed class AdminApiTestCluster : IKafkaTestCluster
{
    /// <summary>The same Kafka as docker-compose.kafka.yml, in KRaft mode.</summary>
    public const string ContainerImage = "apache/kafka:4.1.0";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly KafkaContainer? _container;

    private AdminApiTestCluster(KafkaConnection connection, KafkaContainer? container, string description)
    {
        Connection = connection;
        _container = container;
        Description = description;
        BrokerIds = [.. ClusterSnapshot.Read(connection, Timeout).Brokers.Select(b => b.Id)];
    }

    public string Description { get; }

    public KafkaConnection Connection { get; }

    public IReadOnlyList<int> BrokerIds { get; }

    public bool CanControlBrokers => false;

    public static AdminApiTestCluster External(KafkaConnection connection) =>
        new(connection, null, $"external cluster {connection}");

    public static async Task<AdminApiTestCluster> StartContainerAsync()
    {
        var container = new KafkaBuilder(ContainerImage).Build();
        await container.StartAsync();
        var address = new Uri(container.GetBootstrapAddress());
        return new AdminApiTestCluster(new KafkaConnection($"{address.Host}:{address.Port}"), container, $"Testcontainers {ContainerImage} at {address.Host}:{address.Port}");
    }

    public Task CreateTopicsAsync(IReadOnlyCollection<TopicSpec> topics) =>
        Connection.Capabilities.AdminTopicApis
            ? TopicAdmin.EnsureTopicsAsync(Connection, topics, Timeout)
            : TopicAdmin.WaitForLeadersAsync(Connection, [.. topics.Select(t => t.Name)], TimeSpan.FromSeconds(5));

    public Task DeleteTopicsAsync(IReadOnlyCollection<string> topics) =>
        Connection.Capabilities.AdminTopicApis ? TopicAdmin.DeleteTopicsAsync(Connection, topics, Timeout) : Task.CompletedTask;

    public Task KillBrokerAsync(int brokerId) => throw new NotSupportedException($"{Description}: its brokers cannot be stopped from here.");

    public Task StartBrokerAsync(int brokerId) => throw new NotSupportedException($"{Description}: its brokers cannot be started from here.");

    public async ValueTask DisposeAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }
}
