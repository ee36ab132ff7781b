using System.Diagnostics;
using Bookstore.Contracts;
using Bookstore.Messaging;

namespace Bookstore.LocalKafka;

/// <summary>Kafka's own <c>kafka.admin.TopicCommand</c>, run from the distribution's jars.</summary>
internal static class TopicCommand
{
    private static readonly Version FirstWithBootstrapServer = new(2, 2);

    public static async Task CreateAsync(string java, KafkaDistribution distribution, ClusterLayout layout, TopicSpec topic, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(java)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in Arguments(distribution, layout, topic))
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new LocalKafkaException("TopicCommand did not start.");
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var stdout = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        var output = (stdout + await stderr).Trim();
        var created = output.Contains("Created topic", StringComparison.Ordinal);
        var existed = output.Contains("already exists", StringComparison.Ordinal);
        if (process.ExitCode != 0 || !(created || existed))
        {
            throw new LocalKafkaException($"Creating topic {topic.Name} failed (exit {process.ExitCode}):\n{output}");
        }
    }

    internal static List<string> Arguments(KafkaDistribution distribution, ClusterLayout layout, TopicSpec topic)
    {
        List<string> arguments =
        [
            "-Xmx256m",
            "-Djava.awt.headless=true",
            $"-Dlog4j.configuration=file:{Path.Combine(distribution.Home, "config", "tools-log4j.properties")}",
            "-cp",
            distribution.ClassPath,
            "kafka.admin.TopicCommand",
        ];
        arguments.AddRange(KafkaConnection.ParseVersion(distribution.Version) >= FirstWithBootstrapServer
            ? ["--bootstrap-server", layout.BootstrapServers]
            : ["--zookeeper", layout.ZooKeeperConnect]);
        arguments.AddRange(
        [
            "--create",
            "--topic", topic.Name,
            "--partitions", topic.Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--replication-factor", topic.ReplicationFactor.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ]);
        foreach (var (key, value) in topic.Configs())
        {
            arguments.Add("--config");
            arguments.Add($"{key}={value}");
        }

        return arguments;
    }
}
