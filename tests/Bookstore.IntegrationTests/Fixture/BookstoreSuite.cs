using Bookstore.LocalKafka;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>The five services as separate processes, as a user runs them, on the run's cluster,
/// in a namespace of their own (topics and groups) and with their own databases.</summary>
public sealed class BookstoreSuite : IAsyncDisposable
{
    public static readonly string[] Names = ["Orders", "Inventory", "Payments", "Notifications", "Analytics"];

    private readonly Dictionary<string, ServiceProcess> _services = [];
    private readonly List<ServiceProcess> _extraInstances = [];
    private readonly KafkaClusterFixture _fixture;
    private readonly DirectoryInfo _data;
    private readonly IReadOnlyDictionary<string, string> _configuration;
    private readonly Dictionary<string, TestDatabase> _databases = [];

    private BookstoreSuite(KafkaClusterFixture fixture, string ns, DirectoryInfo data, IReadOnlyDictionary<string, string>? configuration)
    {
        _fixture = fixture;
        Namespace = ns;
        _data = data;
        _configuration = configuration ?? new Dictionary<string, string>();
    }

    /// <summary>The database of the service named <paramref name="name"/> (e.g. <c>Analytics</c>), or of the payment gateway (<c>Gateway</c>).</summary>
    public TestDatabase Database(string name) => _databases[name];

    public string Namespace { get; }

    /// <summary>The admin key of this run, given to every service (<c>Admin__ApiKey</c>) and sent in
    /// <c>X-Api-Key</c> by every service's <see cref="ServiceProcess.Http"/>; <see cref="ServiceProcess.HttpWithoutKey"/>
    /// sends none.</summary>
    public string AdminKey { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public string DataDirectory => _data.FullName;

    public HttpClient Orders => this["Orders"].Http;

    public HttpClient Inventory => this["Inventory"].Http;

    public HttpClient Payments => this["Payments"].Http;

    public HttpClient Notifications => this["Notifications"].Http;

    public HttpClient Analytics => this["Analytics"].Http;

    public ServiceProcess this[string name] => _services[name];

    /// <summary>Starts the suite; <paramref name="configuration"/> (environment-style keys such as
    /// <c>Orders__PendingTimeout</c>) is given to every service process.</summary>
    public static Task<BookstoreSuite> StartAsync(KafkaClusterFixture fixture, string purpose, IReadOnlyDictionary<string, string>? configuration = null) =>
        StartAsync(fixture, StorageBackend.Sqlite, purpose, configuration);

    /// <summary>Starts the suite with every service's state on <paramref name="backend"/>: one database per service, as a user runs it.</summary>
    public static async Task<BookstoreSuite> StartAsync(KafkaClusterFixture fixture, StorageBackend backend, string purpose, IReadOnlyDictionary<string, string>? configuration = null)
    {
        // Tests of both backends share the cluster: their namespaces differ.
        purpose = backend == StorageBackend.Sqlite ? purpose : $"pg-{purpose}";
        var ns = await fixture.CreateNamespaceAsync(purpose);
        var suite = new BookstoreSuite(fixture, ns, Directory.CreateTempSubdirectory($"bookstore-suite-{purpose}-"), configuration);
        foreach (var name in Names.Append("Gateway"))
        {
            suite._databases[name] = await TestDatabase.CreateAsync(backend, suite._data.FullName, $"{purpose}-{name.ToLowerInvariant()}");
        }

        // Inventory first: Orders is ready once it has read the catalog Inventory publishes.
        suite._services["Inventory"] = suite.Launch("Inventory");
        await suite._services["Inventory"].WaitReadyAsync();
        foreach (var name in Names.Where(n => n != "Inventory"))
        {
            suite._services[name] = suite.Launch(name);
        }

        await Task.WhenAll(suite._services.Values.Select(s => s.WaitReadyAsync()));
        return suite;
    }

    /// <summary>Starts one more instance of the service on the same database and group: the group
    /// rebalances and the instances split the partitions. <paramref name="environment"/> overrides
    /// the suite's settings for this instance (e.g. no admin key).</summary>
    public async Task<ServiceProcess> StartAnotherInstanceAsync(string name, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var instance = Launch(name, instance: _extraInstances.Count(s => s.Name == name) + 2, overrides: environment);
        _extraInstances.Add(instance);
        await instance.WaitReadyAsync();
        return instance;
    }

    /// <summary>SIGKILLs the service, then starts it again on the same port and database.</summary>
    public async Task KillAndRestartAsync(string name)
    {
        var killed = _services[name];
        killed.Kill();
        _services[name] = Launch(name, killed.Port);
        await _services[name].WaitReadyAsync();
        killed.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        var all = _services.Values.Concat(_extraInstances).ToList();
        foreach (var crashed in all.Where(s => s.HasExited))
        {
            // Nobody stopped it: its log, which goes with the temporary folder, says why.
            Console.WriteLine($"{crashed.Name} (port {crashed.Port}) exited on its own during the test; the end of {crashed.LogFile}:");
            foreach (var line in File.ReadLines(crashed.LogFile).TakeLast(60))
            {
                Console.WriteLine($"  {line}");
            }
        }

        await Task.WhenAll(all.Select(s => s.StopAsync()));
        foreach (var service in all)
        {
            service.Dispose();
        }

        try
        {
            _data.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A log still open; the temporary folder goes with the machine.
        }
    }

    private ServiceProcess Launch(string name, int? port = null, int instance = 1, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var connection = _fixture.Connection;
        var environment = new Dictionary<string, string?>(_configuration.Select(c => KeyValuePair.Create(c.Key, (string?)c.Value)))
        {
            ["Messaging__Namespace"] = Namespace,
            ["Messaging__BootstrapServers"] = connection.BootstrapServers,
            ["Messaging__BrokerVersion"] = connection.BrokerVersion,
            ["Admin__ApiKey"] = AdminKey,
        };
        foreach (var (key, value) in _databases[name].Environment)
        {
            environment[key] = value;
        }

        if (name == "Payments" && _databases["Gateway"] is { Backend: StorageBackend.Postgres } gateway)
        {
            environment["ConnectionStrings__GatewayPostgres"] = gateway.Location;
        }
        if (name == "Analytics" && _services.TryGetValue("Orders", out var orders))
        {
            environment["Dashboard__OrdersUrl"] = orders.Http.BaseAddress!.ToString();
        }

        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            environment[key] = value;
        }

        var log = Path.Combine(_data.FullName, instance == 1 ? $"{name.ToLowerInvariant()}.log" : $"{name.ToLowerInvariant()}-{instance}.log");
        // A folder of its own, as on a host of its own: on PostgreSQL nothing is shared but the server.
        var workingDirectory = Directory.CreateDirectory(Path.Combine(_data.FullName, "instances", $"{name.ToLowerInvariant()}-{instance}-{Guid.NewGuid():N}"));
        return ServiceProcess.Start(name, port ?? FreePort(), environment, log, AdminKey, workingDirectory.FullName);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One service process, started from its build output.</summary>
public sealed class ServiceProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    private ServiceProcess(string name, int port, Process process, StreamWriter log, string adminKey)
    {
        Name = name;
        Port = port;
        _process = process;
        _log = log;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        Http.DefaultRequestHeaders.Add("X-Api-Key", adminKey);
        HttpWithoutKey = new HttpClient { BaseAddress = Http.BaseAddress, Timeout = Http.Timeout };
    }

    public string Name { get; }

    public int Port { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Sends the suite's admin key with every request.</summary>
    public HttpClient Http { get; }

    /// <summary>As a customer calls: no admin key.</summary>
    public HttpClient HttpWithoutKey { get; }

    public string LogFile { get; private init; } = string.Empty;

    public static ServiceProcess Start(string name, int port, IReadOnlyDictionary<string, string?> environment, string logFile, string adminKey, string workingDirectory)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Assembly(name));
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["DOTNET_gcServer"] = "0";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"{name} did not start.");
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ServiceProcess(name, port, process, log, adminKey) { LogFile = logFile };
    }

    public async Task WaitReadyAsync()
    {
        var ready = await Poll.UntilAsync(
            async ct =>
            {
                Assert.False(_process.HasExited, $"{Name} exited with {(_process.HasExited ? _process.ExitCode : 0)}; see {LogFile}");
                try
                {
                    return (await Http.GetAsync(new Uri("/health/ready", UriKind.Relative), ct)).IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(90),
            TimeSpan.FromMilliseconds(250));
        Assert.True(ready, $"{Name} ready within 90 s; see {LogFile}");
    }

    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM: the service finishes the batch in hand, commits and leaves its group.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }

        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill();
        }
    }

    public async Task<T> GetAsync<T>(string path)
    {
        var response = await Http.GetAsync(new Uri(path, UriKind.Relative));
        Assert.True(response.IsSuccessStatusCode, $"GET {Name}{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<T>())!;
    }

    public void Dispose()
    {
        Http.Dispose();
        HttpWithoutKey.Dispose();
        _process.Dispose();
        lock (_log)
        {
            _log.Dispose();
        }
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // The process outlived our interest in its output.
            }
        }
    }

    private static string Assembly(string name)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var path = Path.Combine(RepositoryRoot.Find(), "services", $"Bookstore.{name}", "bin", configuration, "net10.0", $"Bookstore.{name}.dll");
        Assert.True(File.Exists(path), $"{path} is built (the test project builds the services)");
        return path;
    }
}
