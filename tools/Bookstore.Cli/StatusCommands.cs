using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bookstore.Contracts;
using Bookstore.LocalKafka;
using System.Net.Http.Json;
using Bookstore.Messaging;
using Bookstore.Messaging.Outbox;

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
        var connection = LocalClusterState.ResolveConnection(RepositoryRoot.Find()) ?? throw new LocalKafkaException("No Kafka cluster is known: run ./bookstore up.");
        IReadOnlyList<GroupStatus> groups;
        try
        {
            groups = await ConsumerGroupInspector.DescribeAsync(connection, [.. ConsumerGroups.All]);
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            throw new LocalKafkaException($"Kafka at {connection.BootstrapServers} did not answer: {e.Error.Reason}. Is it up (./bookstore kafka status)?", e);
        }

        var outboxes = await Task.WhenAll(ServiceSpec.All.Select(s => ReadOutboxAsync(instances.FirstOrDefault(i => i.Service == s.Name && i.Ready), cancellationToken)));
        return new SuiteStatus(
            [.. ServiceSpec.All.Select((s, i) => new ServiceStatus(s.Name, [.. instances.Where(i => i.Service == s.Name)], outboxes[i]))],
            [.. groups.Select(g => new GroupView(
                g.GroupId,
                g.State,
                g.TotalLag,
                [.. g.Members.Select(m => new MemberView(byClientId.GetValueOrDefault(m.ClientId, $"{m.ClientId} (process gone; listed until its session expires)"), m.ClientId, m.Host, m.Idle, m.Partitions))]))]);
    }

    /// <summary>The service's outbox (one instance answers for the shared database); null when none answers.</summary>
    private static async Task<OutboxStatus?> ReadOutboxAsync(InstanceStatus? instance, CancellationToken cancellationToken)
    {
        if (instance is null)
        {
            return null;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            return await http.GetFromJsonAsync<OutboxStatus>(new Uri($"http://127.0.0.1:{instance.Port}/outbox"), Json, cancellationToken);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            return null;
        }
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
        Console.WriteLine($"  {"instance",-16} {"pid",7} {"port",6}  {"ready",-5}  {"db",-8}  outbox (waiting / parked)");
        foreach (var service in report.Services)
        {
            foreach (var instance in service.Instances)
            {
                var outbox = service.Outbox is { } o && instance == service.Instances[0] ? $"{o.Pending} / {o.Parked}" : string.Empty;
                Console.WriteLine($"  {instance.Instance,-16} {instance.Pid,7} {instance.Port,6}  {(instance.Ready ? "yes" : "NO"),-5}  {instance.Database,-8}  {outbox}");
            }
        }

        if (!report.Services.Any(s => s.Instances.Count > 0))
        {
            Console.WriteLine("  (no service runs: ./bookstore up)");
        }

        foreach (var service in report.Services.Where(s => s.Outbox is { Parked: > 0 }))
        {
            var outbox = service.Outbox!;
            Console.WriteLine();
            Console.WriteLine($"  {service.Service}: {outbox.Parked} outbox row(s) PARKED (never published; GET http://127.0.0.1:{service.Instances[0].Port}/outbox), e.g.:");
            foreach (var row in outbox.RecentlyParked.Take(3))
            {
                Console.WriteLine($"    #{row.Seq} {row.Topic} key {row.Key} ({row.ValueLength:N0} bytes) at {row.ParkedAt:u}: {row.Error}");
            }
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

internal sealed record ServiceStatus(string Service, IReadOnlyList<InstanceStatus> Instances, OutboxStatus? Outbox);

internal sealed record GroupView(string GroupId, string State, long TotalLag, IReadOnlyList<MemberView> Members);

internal sealed record MemberView(string Instance, string ClientId, string Host, bool Idle, IReadOnlyList<PartitionLag> Partitions);
