using System.Globalization;
using Bookstore.LocalKafka;

namespace Bookstore.Cli;

/// <summary>The CPU time each process of the local suite has used so far: the brokers, ZooKeeper,
/// PostgreSQL (the server and its backends) and every service instance, read from <c>/proc</c>.
/// Two readings around a run give what the run cost, per process.</summary>
internal sealed record SuiteCpu(IReadOnlyDictionary<string, TimeSpan> ByProcess, TimeSpan LoadGenerator)
{
    private const double TicksPerSecond = 100; // USER_HZ: 100 on every Linux the suite runs on

    /// <summary>Now, for the suite of the checkout at <paramref name="root"/>. Empty where there is no <c>/proc</c>.</summary>
    public static SuiteCpu Read(string root)
    {
        var byProcess = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        if (Directory.Exists("/proc/self"))
        {
            var parents = ParentsOfEveryProcess();
            foreach (var (name, pid) in Processes(root))
            {
                if (CpuOf(pid, parents) is { } cpu)
                {
                    byProcess[name] = cpu;
                }
            }
        }

        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return new SuiteCpu(byProcess, self.TotalProcessorTime);
    }

    /// <summary>Milliseconds of CPU per order between <paramref name="before"/> and <paramref name="after"/>.</summary>
    public static CpuPerOrder PerOrder(SuiteCpu before, SuiteCpu after, int orders)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        double Ms(TimeSpan used) => orders == 0 ? 0 : Math.Round(used.TotalMilliseconds / orders, 3);
        var byProcess = after.ByProcess
            .Where(p => before.ByProcess.ContainsKey(p.Key))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ToDictionary(p => p.Key, p => Ms(p.Value - before.ByProcess[p.Key]), StringComparer.Ordinal);
        var brokers = byProcess.Where(p => p.Key.StartsWith("broker-", StringComparison.Ordinal)).Sum(p => p.Value);
        var services = byProcess.Where(p => ServiceSpec.All.Any(s => p.Key == s.Name || p.Key.StartsWith($"{s.Name}#", StringComparison.Ordinal))).Sum(p => p.Value);
        return new CpuPerOrder(
            Math.Round(byProcess.Values.Sum(), 3),
            Math.Round(brokers, 3),
            Math.Round(services, 3),
            byProcess,
            Ms(after.LoadGenerator - before.LoadGenerator));
    }

    /// <summary>The suite's processes by name: <c>broker-N</c>, <c>zookeeper</c>, <c>postgresql</c>,
    /// and each service instance (<c>orders</c>, <c>orders#2</c>, …).</summary>
    private static IEnumerable<(string Name, int Pid)> Processes(string root)
    {
        foreach (var node in LocalKafkaCluster.ForRepository(root).Layout.Nodes)
        {
            if (DetachedProcess.Find(node.PidFile, node.Marker) is { } pid)
            {
                yield return (node.Name, pid);
            }
        }

        if (LocalPostgresServer.ForRepository(root).RunningPid() is { } postmaster)
        {
            yield return ("postgresql", postmaster);
        }

        var suite = new LocalSuite(root, _ => { });
        foreach (var service in ServiceSpec.All)
        {
            foreach (var (instance, pid) in suite.Instances(service))
            {
                yield return (instance == 1 ? service.Name : $"{service.Name}#{instance}", pid);
            }
        }
    }

    /// <summary>The process's user and system time, with that of its live descendants (PostgreSQL's
    /// backends) and of the children it has reaped; null once it is gone.</summary>
    private static TimeSpan? CpuOf(int pid, Dictionary<int, int> parents)
    {
        if (TicksOf(pid, withReapedChildren: true) is not { } ticks)
        {
            return null;
        }

        var descendants = new HashSet<int> { pid };
        bool grew;
        do
        {
            grew = false;
            foreach (var (child, parent) in parents)
            {
                if (descendants.Contains(parent) && descendants.Add(child))
                {
                    ticks += TicksOf(child, withReapedChildren: false) ?? 0;
                    grew = true;
                }
            }
        }
        while (grew);

        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }

    /// <summary>utime + stime (and cutime + cstime) of <c>/proc/PID/stat</c>, in clock ticks.</summary>
    private static long? TicksOf(int pid, bool withReapedChildren)
    {
        if (Fields(pid) is not { } fields)
        {
            return null;
        }

        // After the command name: state is field 3, so utime (14), stime (15), cutime (16) and cstime (17) are at 11..14.
        long At(int field) => long.Parse(fields[field - 3], CultureInfo.InvariantCulture);
        return At(14) + At(15) + (withReapedChildren ? At(16) + At(17) : 0);
    }

    private static Dictionary<int, int> ParentsOfEveryProcess()
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Fields(pid) is { } fields)
            {
                parents[pid] = int.Parse(fields[4 - 3], CultureInfo.InvariantCulture);
            }
        }

        return parents;
    }

    /// <summary>The fields of <c>/proc/PID/stat</c> after the command name (which may hold spaces
    /// and parentheses): the first is the state, field 3.</summary>
    private static string[]? Fields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null; // gone since it was listed
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>CPU milliseconds per order over a run: the suite's total (every process of it), the
/// brokers' and the services' shares, each process, and the load generator's own, apart.</summary>
internal sealed record CpuPerOrder(double Total, double Brokers, double Services, IReadOnlyDictionary<string, double> ByProcess, double LoadGenerator)
{
    public override string ToString() =>
        $"{Total:0.00} ms (brokers {Brokers:0.00}, services {Services:0.00}: {string.Join(", ", ByProcess.Select(p => $"{p.Key} {p.Value:0.00}"))}); load generator {LoadGenerator:0.00} ms apart";
}
