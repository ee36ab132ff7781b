using Bookstore.Contracts;
using Bookstore.LocalKafka;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>This checkout's local three-broker cluster: reused when it already runs, else started
/// for the run and stopped after it.</summary>
internal sealed class LocalTestCluster : IKafkaTestCluster
{
    private readonly LocalKafkaCluster _cluster;
    private readonly bool _startedHere;

    private LocalTestCluster(LocalKafkaCluster cluster, bool startedHere)
    {
        _cluster = cluster;
        _startedHere = startedHere;
        Connection = LocalClusterState.TryRead(cluster.Layout.RepositoryRoot)!.Connection;
    }

    public string Description => $"local cluster {Connection}{(_startedHere ? ", started for this run" : ", already running")}";

    public KafkaConnection Connection { get; }

    public IReadOnlyList<int> BrokerIds => [.. _cluster.Layout.Brokers.Select(b => b.Id)];

    public bool CanControlBrokers => true;

    public static async Task<LocalTestCluster> StartAsync(Action<string> log)
    {
        var cluster = LocalKafkaCluster.ForRepository(RepositoryRoot.Find(), log);
        var started = await cluster.UpAsync();
        return new LocalTestCluster(cluster, started);
    }

    public Task CreateTopicsAsync(IReadOnlyCollection<TopicSpec> topics) => _cluster.CreateTopicsAsync(topics);

    public Task DeleteTopicsAsync(IReadOnlyCollection<string> topics) => _cluster.DeleteTopicsAsync(topics);

    public Task KillBrokerAsync(int brokerId) => _cluster.KillBrokerAsync(brokerId);

    public Task StartBrokerAsync(int brokerId) => _cluster.StartBrokerAsync(brokerId);

    public async ValueTask DisposeAsync()
    {
        if (_startedHere)
        {
            await _cluster.DownAsync();
        }
    }
}
