using System.Globalization;
using Bookstore.Contracts;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>One cluster for the whole test run, shared by every test class in the
/// <see cref="KafkaCollection"/> (which also runs them one at a time: a killed broker must not
/// surprise a neighbour).</summary>
public sealed class KafkaClusterFixture : IAsyncLifetime
{
    private readonly List<string> _testTopics = [];
    private readonly HashSet<string> _namespaces = [];
    private IKafkaTestCluster? _cluster;

    /// <summary>Unique per run: test topics and groups carry it, so runs never see each other's data.</summary>
    public string RunId { get; } = DateTime.UtcNow.ToString("MMddHHmmss", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6];

    public IKafkaTestCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster has not started.");

    public KafkaConnection Connection => Cluster.Connection;

    public async Task InitializeAsync()
    {
        _cluster = TestClusterModes.Current switch
        {
            TestClusterMode.External => AdminApiTestCluster.External(
                KafkaConnectionResolver.FromEnvironment() ?? throw new InvalidOperationException($"{KafkaConnectionResolver.BootstrapServersVariable} is not set.")),
            TestClusterMode.Container => await AdminApiTestCluster.StartContainerAsync(),
            _ => await LocalTestCluster.StartAsync(Console.WriteLine),
        };
        Console.WriteLine($"integration tests run against the {_cluster.Description}");
        await _cluster.CreateTopicsAsync(Topics.All);
    }

    /// <summary>A topic of this run only, named after <paramref name="purpose"/>, with the
    /// suite's replication settings capped to the broker count.</summary>
    public async Task<string> CreateTopicAsync(string purpose, int partitions)
    {
        var name = $"test-{RunId}-{purpose}";
        await Cluster.CreateTopicsAsync([new TopicSpec(name, partitions, TimeSpan.FromDays(1))]);
        lock (_testTopics)
        {
            _testTopics.Add(name);
        }

        return name;
    }

    public string GroupId(string purpose) => $"test-{RunId}-{purpose}";

    /// <summary>A namespace of this run: copies of the table's <paramref name="topics"/> under a
    /// prefix, for services whose topic and group names all carry it.</summary>
    public async Task<string> CreateNamespaceAsync(string purpose, params TopicSpec[] topics)
    {
        var prefix = $"test-{RunId}-{purpose}.";
        lock (_namespaces)
        {
            // Two tests in one namespace would read each other's events.
            Assert.True(_namespaces.Add(prefix), $"the namespace {purpose} is used by one test only");
        }

        var specs = (topics.Length == 0 ? Topics.All : topics).Select(t => t with { Name = prefix + t.Name }).ToList();
        await Cluster.CreateTopicsAsync(specs);
        lock (_testTopics)
        {
            _testTopics.AddRange(specs.Select(t => t.Name));
        }

        return prefix;
    }

    public async Task DisposeAsync()
    {
        if (_cluster is null)
        {
            return;
        }

        if (_testTopics.Count > 0)
        {
            await _cluster.DeleteTopicsAsync(_testTopics);
        }

        await _cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class KafkaCollection : ICollectionFixture<KafkaClusterFixture>
{
    public const string Name = "kafka";
}

/// <summary>A test that kills and restarts brokers: it runs where the fixture can do that (always
/// on the local cluster, so always in CI) and says why it is skipped elsewhere.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BrokerControlFactAttribute : FactAttribute
{
    public BrokerControlFactAttribute()
    {
        if (TestClusterModes.Current != TestClusterMode.Local)
        {
            Skip = $"needs brokers it can kill and restart; the {TestClusterModes.Current} cluster of this run has none (run without {KafkaConnectionResolver.BootstrapServersVariable} and Docker to use the local cluster)";
        }
    }
}
