using System.Diagnostics;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.IntegrationTests.Fixture;

namespace Bookstore.IntegrationTests;

/// <summary>The cluster as a client that shares none of our code sees it: Debian's <c>kcat</c>
/// (librdkafka's command-line tool).</summary>
[Collection(KafkaCollection.Name)]
public sealed class IndependentClientTests(KafkaClusterFixture fixture)
{
    [KcatFact]
    public async Task Kcat_sees_every_broker_and_the_table_topics_fully_replicated()
    {
        var arguments = new List<string> { "-L", "-J", "-m", "15", "-b", fixture.Connection.BootstrapServers };
        if (fixture.Connection.IsLegacyBroker)
        {
            arguments.AddRange(["-X", "api.version.request=false", "-X", $"broker.version.fallback={fixture.Connection.BrokerVersion}"]);
        }

        using var metadata = JsonDocument.Parse(await RunAsync("kcat", arguments));

        var brokers = metadata.RootElement.GetProperty("brokers").EnumerateArray().Select(b => b.GetProperty("id").GetInt32()).Order();
        Assert.Equal(fixture.Cluster.BrokerIds.Order(), brokers);
        var topics = metadata.RootElement.GetProperty("topics").EnumerateArray().ToDictionary(t => t.GetProperty("topic").GetString()!);
        foreach (var declared in Topics.All.Select(t => t.CappedTo(fixture.Cluster.BrokerIds.Count)))
        {
            Assert.True(topics.TryGetValue(declared.Name, out var topic), $"kcat lists {declared.Name}");
            var partitions = topic.GetProperty("partitions").EnumerateArray().ToList();
            Assert.Equal(declared.Partitions, partitions.Count);
            Assert.All(partitions, p =>
            {
                Assert.True(p.GetProperty("leader").GetInt32() >= 0);
                Assert.Equal(declared.ReplicationFactor, p.GetProperty("replicas").GetArrayLength());
                Assert.Equal(declared.ReplicationFactor, p.GetProperty("isrs").GetArrayLength());
            });
        }
    }

    private static async Task<string> RunAsync(string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{program} failed: {await stderr}");
        return stdout;
    }
}

/// <summary>Runs where Debian's kcat is installed (CI installs it) and says so where it is not.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class KcatFactAttribute : FactAttribute
{
    public KcatFactAttribute()
    {
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(dir => File.Exists(Path.Combine(dir, "kcat")));
        if (!onPath)
        {
            Skip = "kcat is not installed (Debian: apt-get install -y kcat; .ci/run installs it)";
        }
    }
}
