using System.Text.Json;
using System.Text.Json.Serialization;
using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>What <c>./bookstore kafka up</c> records about the local cluster it started, so that the
/// CLI and the test fixture connect to it with the right settings, and hand them to the services
/// they start (which know only their configuration).</summary>
public sealed record LocalClusterState(
    string BootstrapServers,
    string BrokerVersion,
    string ZooKeeper,
    IReadOnlyList<LocalBrokerState> Brokers)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public KafkaConnection Connection => new(BootstrapServers, BrokerVersion);

    /// <summary>For the CLI: a cluster named in the environment, else this checkout's local one.</summary>
    public static KafkaConnection? ResolveConnection(string repositoryRoot) =>
        KafkaConnectionResolver.FromEnvironment() ?? TryRead(repositoryRoot)?.Connection;

    /// <summary>The state file of the checkout rooted at <paramref name="repositoryRoot"/>.</summary>
    public static string PathFor(string repositoryRoot) =>
        System.IO.Path.Combine(repositoryRoot, ".bookstore", "kafka", "cluster.json");

    public static LocalClusterState? TryRead(string repositoryRoot)
    {
        var path = PathFor(repositoryRoot);
        if (!File.Exists(path))
        {
            return null;
        }

        return JsonSerializer.Deserialize<LocalClusterState>(File.ReadAllText(path), Json)
            ?? throw new InvalidDataException($"{path} is empty.");
    }

    public void Write(string repositoryRoot)
    {
        var path = PathFor(repositoryRoot);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
        File.Move(temporary, path, overwrite: true);
    }
}

public sealed record LocalBrokerState(int Id, int Port);
