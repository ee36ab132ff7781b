using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bookstore.Contracts;
using Bookstore.LocalKafka;
using Bookstore.Messaging;

namespace Bookstore.Cli;

/// <summary><c>./bookstore status | scale | kill</c>: who runs, who owns which partitions, how far behind.</summary>
internal static partial class StatusCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static IEnumerable<Command> Create()
    {
        var json = new Option<bool>("--json") { Description = "print JSON" };
        var status = new Command("status", "Services and their instances (pid, port, ready); per consumer group each member, its partitions and lag.") { json };
        status.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var report = await SnapshotAsync(ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report, Json));
            }
            else
            {
                Print(report);
            }
        }));

        var target = new Argument<string>("SERVICE=N") { Description = "e.g. inventory=3" };
        var scale = new Command("scale", "Start or gracefully stop instances of a service; its group rebalances.") { target };
        scale.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var match = ScaleTarget().Match(parse.GetValue(target) ?? string.Empty);
            if (!match.Success)
            {
                throw new LocalKafkaException("Say SERVICE=N, e.g. ./bookstore scale inventory=3.");
            }

            var service = ServiceSpec.Find(match.Groups["service"].Value);
            var count = int.Parse(match.Groups["count"].Value, System.Globalization.CultureInfo.InvariantCulture);
            await Suite().ScaleAsync(service, count, ct);
            await WaitForMembersAsync(service, count, ct);
        }));

        var victim = new Argument<string>("SERVICE[#i]") { Description = "e.g. inventory or inventory#2" };
        var kill = new Command("kill", "Kill one instance of a service hard (SIGKILL): its group notices after the session timeout.") { victim };
        kill.SetAction((parse, _) => CommandRunner.Run(() =>
        {
            var parts = (parse.GetValue(victim) ?? string.Empty).Split('#', 2);
            var instance = parts.Length == 2 && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var i) ? i : 1;
            Suite().Kill(ServiceSpec.Find(parts[0]), instance);
            return Task.CompletedTask;
        }));

        return [status, scale, kill];
    }

    private static LocalSuite Suite() => new(RepositoryRoot.Find(), Console.WriteLine);

    private static async Task<SuiteStatus> SnapshotAsync(CancellationToken cancellationToken)
    {
        var instances = await Suite().InstanceStatusAsync(cancellationToken);
        var byClientId = instances.ToDictionary(i => $"{ServiceNameOf(i.Service)}-{i.Pid}", i => i.Instance);
        var connection = KafkaConnectionResolver.Resolve() ?? throw new LocalKafkaException("No Kafka cluster is known: run ./bookstore up.");
        IReadOnlyList<GroupStatus> groups;
        try
        {
            groups = await ConsumerGroupInspector.DescribeAsync(connection, [.. ConsumerGroups.All]);
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            throw new LocalKafkaException($"Kafka at {connection.BootstrapServers} did not answer: {e.Error.Reason}. Is it up (./bookstore kafka status)?", e);
        }

        return new SuiteStatus(
            [.. ServiceSpec.All.Select(s => new ServiceStatus(s.Name, [.. instances.Where(i => i.Service == s.Name)]))],
            [.. groups.Select(g => new GroupView(
                g.GroupId,
                g.State,
                g.TotalLag,
                [.. g.Members.Select(m => new MemberView(byClientId.GetValueOrDefault(m.ClientId, $"{m.ClientId} (process gone; listed until its session expires)"), m.ClientId, m.Host, m.Idle, m.Partitions))]))]);
    }

    /// <summary>Waits until the group shows <paramref name="count"/> members, then prints the assignment.</summary>
    private static async Task WaitForMembersAsync(ServiceSpec service, int count, CancellationToken cancellationToken)
    {
        var group = ConsumerGroupOf(service);
        SuiteStatus? report = null;
        var settled = await Poll.UntilAsync(
            async ct =>
            {
                report = await SnapshotAsync(ct);
                var view = report.Groups.FirstOrDefault(g => g.GroupId == group);
                return count == 0 ? view is null || view.Members.Count == 0 : view is { State: "Stable" } && view.Members.Count == count;
            },
            TimeSpan.FromSeconds(30),
            TimeSpan.FromMilliseconds(500),
            cancellationToken);
        Console.WriteLine(settled ? $"group {group} rebalanced: {count} member(s)" : $"group {group} has not settled at {count} member(s) within 30 s");
        if (report is not null)
        {
            PrintGroups(report.Groups.Where(g => g.GroupId == group));
        }
    }

    private static void Print(SuiteStatus report)
    {
        Console.WriteLine();
        Console.WriteLine($"  {"instance",-16} {"pid",7} {"port",6}  ready");
        foreach (var instance in report.Services.SelectMany(s => s.Instances))
        {
            Console.WriteLine($"  {instance.Instance,-16} {instance.Pid,7} {instance.Port,6}  {(instance.Ready ? "yes" : "NO")}");
        }

        if (!report.Services.Any(s => s.Instances.Count > 0))
        {
            Console.WriteLine("  (no service runs: ./bookstore up)");
        }

        PrintGroups(report.Groups);
    }

    private static void PrintGroups(IEnumerable<GroupView> groups)
    {
        foreach (var group in groups)
        {
            Console.WriteLine();
            Console.WriteLine($"  group {group.GroupId} ({group.State}, lag {group.TotalLag})");
            foreach (var member in group.Members)
            {
                var partitions = member.Idle
                    ? "idle: more members than partitions"
                    : string.Join("  ", member.Partitions.GroupBy(p => p.Topic).Select(t => $"{t.Key}[{string.Join(",", t.Select(p => $"{p.Partition}:{p.Lag}"))}]"));
                Console.WriteLine($"    {member.Instance,-16} {partitions}");
            }
        }
    }

    private static string ConsumerGroupOf(ServiceSpec service) => ServiceNameOf(service.Name);

    /// <summary>The group (and client id prefix) a service uses: <c>inventory</c> → <c>inventory-service</c>.</summary>
    private static string ServiceNameOf(string service) => service switch
    {
        "orders" => ConsumerGroups.Orders,
        "inventory" => ConsumerGroups.Inventory,
        "payments" => ConsumerGroups.Payments,
        "notifications" => ConsumerGroups.Notifications,
        "analytics" => ConsumerGroups.Analytics,
        _ => service,
    };

    [GeneratedRegex(@"^(?<service>[a-zA-Z]+)=(?<count>\d{1,2})$")]
    private static partial Regex ScaleTarget();
}

internal sealed record SuiteStatus(IReadOnlyList<ServiceStatus> Services, IReadOnlyList<GroupView> Groups);

internal sealed record ServiceStatus(string Service, IReadOnlyList<InstanceStatus> Instances);

internal sealed record GroupView(string GroupId, string State, long TotalLag, IReadOnlyList<MemberView> Members);

internal sealed record MemberView(string Instance, string ClientId, string Host, bool Idle, IReadOnlyList<PartitionLag> Partitions);
