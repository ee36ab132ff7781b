using System.Diagnostics;
using System.Globalization;
using Bookstore.Contracts;
using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>Kafka's own <c>kafka.admin.TopicCommand</c>, run from the distribution's jars.</summary>
internal static class TopicCommand
{
    private static readonly Version FirstWithBootstrapServer = new(2, 2);

    // It takes seconds; one that hangs (ZooKeeper unreachable, a JVM that never exits) must fail
    // its caller, never hold it (a test run, `./bookstore up`) for good.
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    public static Task CreateAsync(string java, KafkaDistribution distribution, ClusterLayout layout, TopicSpec topic, CancellationToken cancellationToken)
    {
        List<string> create =
        [
            "--create",
            "--topic", topic.Name,
            "--partitions", topic.Partitions.ToString(CultureInfo.InvariantCulture),
            "--replication-factor", topic.ReplicationFactor.ToString(CultureInfo.InvariantCulture),
        ];
        foreach (var (key, value) in topic.Configs())
        {
            create.Add("--config");
            create.Add($"{key}={value}");
        }

        return RunAsync(java, distribution, layout, create, ["Created topic", "already exists"], $"Creating topic {topic.Name}", cancellationToken);
    }

    /// <summary>Marks the topic for deletion; the controller removes it shortly after.</summary>
    public static Task DeleteAsync(string java, KafkaDistribution distribution, ClusterLayout layout, string topic, CancellationToken cancellationToken) =>
        RunAsync(java, distribution, layout, ["--delete", "--topic", topic], ["marked for deletion", "does not exist"], $"Deleting topic {topic}", cancellationToken);

    private static async Task RunAsync(
        string java,
        KafkaDistribution distribution,
        ClusterLayout layout,
        IReadOnlyList<string> command,
        IReadOnlyList<string> success,
        string what,
        CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(java)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in Arguments(distribution, layout, command))
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new LocalKafkaException("TopicCommand did not start.");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Timeout);
        string output;
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(deadline.Token);
            var stdout = await process.StandardOutput.ReadToEndAsync(deadline.Token);
            await process.WaitForExitAsync(deadline.Token);
            output = (stdout + await stderr).Trim();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new LocalKafkaException($"{what} did not finish within {Timeout.TotalSeconds:0} s; the JVM was killed.");
        }

        if (process.ExitCode != 0 || !success.Any(s => output.Contains(s, StringComparison.Ordinal)))
        {
            throw new LocalKafkaException($"{what} failed (exit {process.ExitCode}):\n{output}");
        }
    }

    internal static List<string> Arguments(KafkaDistribution distribution, ClusterLayout layout, IReadOnlyList<string> command)
    {
        List<string> arguments =
        [
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1", // a tool that runs for seconds: C2 would only compile
            "-Djava.awt.headless=true",
            $"-Dlog4j.configuration=file:{Path.Combine(distribution.Home, "config", "tools-log4j.properties")}",
            "-cp",
            distribution.ClassPath,
            "kafka.admin.TopicCommand",
        ];
        arguments.AddRange(KafkaConnection.ParseVersion(distribution.Version) >= FirstWithBootstrapServer
            ? ["--bootstrap-server", layout.BootstrapServers]
            : ["--zookeeper", layout.ZooKeeperConnect]);
        arguments.AddRange(command);
        return arguments;
    }
}
