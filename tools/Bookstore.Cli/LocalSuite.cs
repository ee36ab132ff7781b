using System.Diagnostics;
using Bookstore.Contracts;
using Bookstore.LocalKafka;

namespace Bookstore.Cli;

/// <summary>One service of the suite as <c>./bookstore</c> runs it.</summary>
/// <param name="Group">The name the service gives itself: its consumer group and its database file.</param>
internal sealed record ServiceSpec(string Name, string Project, int Port, string Group)
{
    public static IReadOnlyList<ServiceSpec> All { get; } =
    [
        // Inventory first: it publishes the catalog that Orders waits for.
        new("inventory", "Bookstore.Inventory", 5200, ConsumerGroups.Inventory),
        new("orders", "Bookstore.Orders", 5100, ConsumerGroups.Orders),
        new("payments", "Bookstore.Payments", 5300, ConsumerGroups.Payments),
        new("notifications", "Bookstore.Notifications", 5400, ConsumerGroups.Notifications),
        new("analytics", "Bookstore.Analytics", 5500, ConsumerGroups.Analytics),
    ];

    public static ServiceSpec Find(string name) =>
        All.FirstOrDefault(s => s.Name.Equals(name, StringComparison.OrdinalIgnoreCase) || s.Name.TrimEnd('s').Equals(name.TrimEnd('s'), StringComparison.OrdinalIgnoreCase))
        ?? throw new LocalKafkaException($"There is no service '{name}': the services are {string.Join(", ", All.Select(s => s.Name))}.");
}

/// <param name="Database">Where the instance keeps its state: <c>sqlite</c> or <c>postgres</c>.</param>
internal sealed record InstanceStatus(string Service, string Instance, int Pid, int Port, bool Ready, string Database);

/// <summary>Where the suite's services keep their state. SQLite needs nothing installed; PostgreSQL
/// (the local server of <c>./bookstore db</c>) lets instances share nothing but the database.</summary>
internal enum SuiteDatabase
{
    Sqlite,
    Postgres,
}

/// <summary>The local cluster and the five services as separate processes on loopback, with
/// their logs and pid files under <c>.bookstore/</c>.</summary>
internal sealed class LocalSuite(string root, Action<string> report)
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(90);

    private string Home => Path.Combine(root, ".bookstore");

    /// <summary>This data folder's admin key, given to every instance started here.</summary>
    private string AdminKey => field ??= AdminKeyFile.LoadOrCreate(Home);

    /// <summary>Recorded by <c>up</c>, so that instances started later (<c>scale</c>) use the same
    /// backend as the ones running.</summary>
    private string DatabaseFile => Path.Combine(Home, "run", "database");

    public string LogFile(ServiceSpec service, int instance) => Path.Combine(Home, "logs", $"{service.Name}-{instance}.log");

    /// <summary>The backend the last <c>up</c> chose; SQLite when none has run.</summary>
    public SuiteDatabase Database =>
        File.Exists(DatabaseFile) && Enum.TryParse<SuiteDatabase>(File.ReadAllText(DatabaseFile).Trim(), ignoreCase: true, out var recorded)
            ? recorded
            : SuiteDatabase.Sqlite;

    public async Task UpAsync(SuiteDatabase database, CancellationToken cancellationToken)
    {
        var runningServices = ServiceSpec.All.Where(s => Instances(s).Any()).Select(s => s.Name).ToList();
        if (runningServices.Count > 0 && Database != database)
        {
            // Instances on two backends would each see half of the service's state.
            throw new LocalKafkaException(
                $"{string.Join(", ", runningServices)} already run on {Name(Database)}: stop the suite first (./bookstore down), then ./bookstore up{(database == SuiteDatabase.Postgres ? " --db postgres" : string.Empty)}.");
        }

        // The key exists once `up` has run, even when every service was already running.
        _ = AdminKey;
        await BuildAsync(cancellationToken);
        await LocalKafkaCluster.ForRepository(root, report).UpAsync(cancellationToken);
        if (database == SuiteDatabase.Postgres)
        {
            await Postgres().UpAsync(cancellationToken);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(DatabaseFile)!);
        await File.WriteAllTextAsync(DatabaseFile, Name(database) + "\n", cancellationToken);

        // Inventory first: Orders is ready once it has read the catalog Inventory publishes.
        foreach (var wave in new[] { ServiceSpec.All.Take(1), ServiceSpec.All.Skip(1) })
        {
            var started = new List<(ServiceSpec Service, int Pid)>();
            foreach (var service in wave)
            {
                if (Find(service, 1) is { } running)
                {
                    report($"{service.Name} is already running (pid {running})");
                    continue;
                }

                started.Add((service, Start(service, 1)));
            }

            await Task.WhenAll(started.Select(s => WaitReadyAsync(s.Service, 1, s.Pid, cancellationToken)));
        }
        PrintTable();
    }

    /// <summary>Starts or gracefully stops instances until <paramref name="count"/> run; the
    /// group rebalances as members join or leave.</summary>
    public async Task ScaleAsync(ServiceSpec service, int count, CancellationToken cancellationToken)
    {
        if (count is < 0 or > 16)
        {
            throw new LocalKafkaException("Scale to between 0 and 16 instances.");
        }

        var running = Instances(service).ToList();
        var started = new List<(int Instance, int Pid)>();
        for (var instance = 1; instance <= count; instance++)
        {
            if (running.All(r => r.Instance != instance))
            {
                started.Add((instance, Start(service, instance)));
            }
        }

        await Task.WhenAll(started.Select(s => WaitReadyAsync(service, s.Instance, s.Pid, cancellationToken)));
        await Task.WhenAll(running.Where(r => r.Instance > count).Select(async r =>
        {
            var clean = await DetachedProcess.StopAsync(r.Pid, TimeSpan.FromSeconds(20), cancellationToken);
            File.Delete(PidFile(service, r.Instance));
            report($"{service.Name}#{r.Instance} stopped{(clean ? " (left its group)" : " (SIGKILL after 20 s)")}");
        }));
    }

    /// <summary>SIGKILL: the member vanishes without leaving its group; its partitions move only
    /// once the group's session timeout notices.</summary>
    public void Kill(ServiceSpec service, int instance)
    {
        var pid = Find(service, instance) ?? throw new LocalKafkaException($"{service.Name}#{instance} is not running.");
        DetachedProcess.Kill(pid);
        File.Delete(PidFile(service, instance));
        report($"{service.Name}#{instance} (pid {pid}) killed with SIGKILL");
    }

    public async Task<IReadOnlyList<InstanceStatus>> InstanceStatusAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var result = new List<InstanceStatus>();
        foreach (var service in ServiceSpec.All)
        {
            foreach (var (instance, pid) in Instances(service))
            {
                var port = PortOf(service, instance);
                bool ready;
                try
                {
                    ready = (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/health/ready"), cancellationToken)).IsSuccessStatusCode;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    ready = false;
                }

                result.Add(new InstanceStatus(service.Name, $"{service.Name}-{instance}", pid, port, ready, Name(Database)));
            }
        }

        return result;
    }

    public async Task DownAsync(CancellationToken cancellationToken)
    {
        var running = ServiceSpec.All.SelectMany(s => Instances(s).Select(i => (Service: s, Instance: i.Instance, i.Pid))).ToList();
        await Task.WhenAll(running.Select(async r =>
        {
            var clean = await DetachedProcess.StopAsync(r.Pid, TimeSpan.FromSeconds(20), cancellationToken);
            report($"{r.Service.Name}-{r.Instance} stopped{(clean ? string.Empty : " (SIGKILL after 20 s)")}");
            File.Delete(PidFile(r.Service, r.Instance));
        }));
        await LocalKafkaCluster.ForRepository(root, report).DownAsync(cancellationToken);

        // Whoever started it (up --db postgres, db up, a test run): down leaves no process of this checkout.
        var postgres = Postgres();
        if (postgres.RunningPid() is not null)
        {
            await postgres.DownAsync(cancellationToken: cancellationToken);
        }
    }

    public void PrintTable()
    {
        Console.WriteLine();
        Console.WriteLine($"  services keep their state in {Describe(Database)}");
        Console.WriteLine();
        Console.WriteLine($"  {"service",-14} {"pid",7}  {"url",-24} {"API page",-34} log");
        foreach (var service in ServiceSpec.All)
        {
            foreach (var (instance, pid) in Instances(service))
            {
                var url = $"http://127.0.0.1:{PortOf(service, instance)}";
                Console.WriteLine($"  {service.Name + (instance > 1 ? $"#{instance}" : string.Empty),-14} {pid,7}  {url,-24} {url + "/scalar/v1",-34} {Path.GetRelativePath(root, LogFile(service, instance))}");
            }
        }

        Console.WriteLine();
        Console.WriteLine($"  Dashboard (topics, groups, rebalances, the funnel, a live tail): http://127.0.0.1:{PortOf(ServiceSpec.Find("analytics"), 1)}/");
        Console.WriteLine("  Try: curl -s -X POST http://127.0.0.1:5100/orders -H 'content-type: application/json' \\");
        Console.WriteLine("         -d '{\"customerId\":\"alice\",\"lines\":[{\"isbn\":\"978-1-4920-4346-3\",\"quantity\":1}]}'");
        var keyFile = Path.GetRelativePath(root, AdminKeyFile.PathIn(Home));
        Console.WriteLine();
        Console.WriteLine($"  Admin key (header X-Api-Key; PUT /books, /admin/gateway, POST /analytics/replay, the dashboard's burst): {keyFile} (mode 0600)");
        Console.WriteLine($"  Try: curl -s -X PUT http://127.0.0.1:5300/admin/gateway -H \"X-Api-Key: $(cat {keyFile})\" \\");
        Console.WriteLine("         -H 'content-type: application/json' -d '{\"failureRate\":0.5,\"latencyMs\":20}'");
    }

    public IEnumerable<(int Instance, int Pid)> Instances(ServiceSpec service)
    {
        for (var instance = 1; instance <= 16; instance++)
        {
            if (Find(service, instance) is { } pid)
            {
                yield return (instance, pid);
            }
        }
    }

    public static string Name(SuiteDatabase database) => database.ToString().ToLowerInvariant();

    private static int PortOf(ServiceSpec service, int instance) => service.Port + instance - 1;

    private LocalPostgresServer Postgres() => LocalPostgresServer.ForRepository(root, report);

    private string Describe(SuiteDatabase database) => database == SuiteDatabase.Postgres
        ? $"PostgreSQL on 127.0.0.1:{Postgres().Port} (a database per service; ./bookstore db status)"
        : $"SQLite files under {Path.GetRelativePath(root, Path.Combine(Home, "data"))}";

    /// <summary>The settings that point a service at its database: PostgreSQL when a connection
    /// string is given, else the SQLite file.</summary>
    private Dictionary<string, string?> DatabaseSettings(ServiceSpec service)
    {
        if (Database == SuiteDatabase.Sqlite)
        {
            return new() { ["Messaging__DatabasePath"] = Path.Combine(Home, "data", $"{service.Group}.db") };
        }

        var postgres = Postgres();
        if (postgres.RunningPid() is null)
        {
            throw new LocalKafkaException("The suite runs on PostgreSQL, which is not running: ./bookstore db up (or ./bookstore up --db postgres).");
        }

        var settings = new Dictionary<string, string?> { ["ConnectionStrings__Postgres"] = postgres.ConnectionString(service.Group) };
        if (service.Group == ConsumerGroups.Payments)
        {
            settings["ConnectionStrings__GatewayPostgres"] = postgres.ConnectionString(LocalPostgresServer.GatewayDatabase);
        }

        return settings;
    }

    private string PidFile(ServiceSpec service, int instance) => Path.Combine(Home, "run", $"{service.Name}-{instance}.pid");

    private string Marker(ServiceSpec service, int instance) => $"--bookstore-instance={Home}/{service.Name}-{instance}";

    private int? Find(ServiceSpec service, int instance) => DetachedProcess.Find(PidFile(service, instance), Marker(service, instance));

    private int Start(ServiceSpec service, int instance)
    {
        var port = PortOf(service, instance);
        if (!DetachedProcess.IsPortFree(port))
        {
            throw new LocalKafkaException($"Port {port} for {service.Name} is taken by another process (see: ss -ltnp 'sport = :{port}').");
        }

        var cluster = LocalClusterState.TryRead(root) ?? throw new LocalKafkaException("The local cluster has not been started: ./bookstore kafka up.");
        var assembly = Path.Combine(root, "services", service.Project, "bin", "Release", "net10.0", $"{service.Project}.dll");
        var environment = new Dictionary<string, string?>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["Messaging__BootstrapServers"] = cluster.BootstrapServers,
            ["Messaging__BrokerVersion"] = cluster.BrokerVersion,
            ["Admin__ApiKey"] = AdminKey,
            // Workstation GC: a small service on a small machine.
            ["DOTNET_gcServer"] = "0",
            // glibc gives each thread that allocates its own arena, up to 8 per core, and each keeps
            // what it freed: with librdkafka's threads (five per client) that cost Analytics ≈ 20 MB.
            ["MALLOC_ARENA_MAX"] = Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") ?? "2",
        };
        foreach (var (key, value) in DatabaseSettings(service))
        {
            environment[key] = value;
        }

        var pid = DetachedProcess.Start(
            LogFile(service, instance),
            PidFile(service, instance),
            "dotnet",
            [assembly, "--contentRoot", Path.GetDirectoryName(assembly)!, Marker(service, instance)],
            environment);
        report($"{service.Name} starting on http://127.0.0.1:{port} (pid {pid})");
        return pid;
    }

    private async Task WaitReadyAsync(ServiceSpec service, int instance, int pid, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var url = new Uri($"http://127.0.0.1:{PortOf(service, instance)}/health/ready");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < ReadyTimeout)
        {
            if (!DetachedProcess.IsAlive(pid))
            {
                throw new LocalKafkaException($"{service.Name} exited. Last lines of {LogFile(service, instance)}:\n{DetachedProcess.Tail(LogFile(service, instance), 25)}");
            }

            try
            {
                if ((await http.GetAsync(url, cancellationToken)).IsSuccessStatusCode)
                {
                    report($"{service.Name} ready after {clock.Elapsed.TotalSeconds:0.0} s");
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Slow to answer while starting.
            }

            await Task.Delay(250, cancellationToken);
        }

        throw new LocalKafkaException($"{service.Name} not ready after {ReadyTimeout.TotalSeconds} s. Last lines of {LogFile(service, instance)}:\n{DetachedProcess.Tail(LogFile(service, instance), 25)}");
    }

    private async Task BuildAsync(CancellationToken cancellationToken)
    {
        report("building the services (Release) …");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "build", Path.Combine(root, "Bookstore.Services.slnf"), "-c", "Release", "-nologo", "-v", "q" })
        {
            start.ArgumentList.Add(argument);
        }

        using var build = Process.Start(start)!;
        var output = build.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = build.StandardError.ReadToEndAsync(cancellationToken);
        await build.WaitForExitAsync(cancellationToken);
        if (build.ExitCode != 0)
        {
            throw new LocalKafkaException($"Building the services failed:\n{await output}{await errors}");
        }
    }
}
