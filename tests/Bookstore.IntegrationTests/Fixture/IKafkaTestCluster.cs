using Bookstore.Contracts;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>A running cluster, whichever kind: tests see only this.</summary>
public interface IKafkaTestCluster : IAsyncDisposable
{
    string Description { get; }

    KafkaConnection Connection { get; }

    IReadOnlyList<int> BrokerIds { get; }

    /// <summary>Whether <see cref="KillBrokerAsync"/> and <see cref="StartBrokerAsync"/> work here.</summary>
    bool CanControlBrokers { get; }

    /// <summary>Creates the topics (replication capped to the broker count) and waits for their leaders.</summary>
    Task CreateTopicsAsync(IReadOnlyCollection<TopicSpec> topics);

    Task DeleteTopicsAsync(IReadOnlyCollection<string> topics);

    Task KillBrokerAsync(int brokerId);

    Task StartBrokerAsync(int brokerId);
}
