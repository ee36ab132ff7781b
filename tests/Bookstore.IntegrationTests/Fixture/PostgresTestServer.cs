using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Bookstore.LocalKafka;
using Npgsql;
using Testcontainers.PostgreSql;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>Which PostgreSQL the tests get, picked as the cluster is: the server named by
/// <c>BOOKSTORE_TEST_DATABASE</c>; else a Testcontainers server when a Docker engine answers;
/// else this checkout's local server (<c>./bookstore db</c>).</summary>
public enum TestDatabaseMode
{
    External,
    Container,
    Local,
}

/// <summary>One PostgreSQL server for the whole test process, started on first use. Each test
/// gets fresh databases of its own, named after the run, and dropped when the process ends (and,
/// should that not happen, by a run a day later).</summary>
public sealed partial class PostgresTestServer
{
    /// <summary>A connection string of a server where the tests may create and drop databases.</summary>
    public const string ConnectionStringVariable = "BOOKSTORE_TEST_DATABASE";

    public const string ContainerImage = "postgres:15-alpine";

    private const string NamePrefix = "test_";
    private const int MaxIdentifierBytes = 63;

    private static readonly TimeSpan StaleAfter = TimeSpan.FromDays(1);
    private static readonly Lazy<Task<PostgresTestServer>> Shared = new(StartAsync);

    private readonly string _adminConnectionString;
    private readonly Func<Task> _stop;
    private readonly List<string> _databases = [];
    private int _created;

    private PostgresTestServer(TestDatabaseMode mode, string adminConnectionString, string description, Func<Task> stop)
    {
        Mode = mode;
        _adminConnectionString = adminConnectionString;
        Description = description;
        _stop = stop;
    }

    public static TestDatabaseMode CurrentMode { get; } = Detect();

    public TestDatabaseMode Mode { get; }

    /// <summary>For the test log: which server, and whether this run started it.</summary>
    public string Description { get; }

    /// <summary>Unique per process, and sortable by time: a later run recognises stale databases by it.</summary>
    public string RunId { get; } = DateTime.UtcNow.ToString("yyMMddHHmmss", CultureInfo.InvariantCulture) + "_" + Guid.NewGuid().ToString("N")[..6];

    /// <summary>The process's server, started (or found) on first use.</summary>
    public static Task<PostgresTestServer> GetAsync() => Shared.Value;

    /// <summary>A new, empty database of this run; returns its connection string (TCP, password).</summary>
    public async Task<string> CreateDatabaseAsync(string purpose)
    {
        var name = DatabaseName(RunId, Interlocked.Increment(ref _created), purpose);
        await using (var connection = await OpenAdminAsync())
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE {LocalPostgresServer.QuoteIdentifier(name)}", connection);
            await create.ExecuteNonQueryAsync();
        }

        lock (_databases)
        {
            _databases.Add(name);
        }

        return new NpgsqlConnectionStringBuilder(_adminConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary><c>test_&lt;run&gt;_&lt;n&gt;_&lt;purpose&gt;</c>, lower case, within PostgreSQL's 63 bytes.</summary>
    internal static string DatabaseName(string runId, int sequence, string purpose)
    {
        var text = new StringBuilder($"{NamePrefix}{runId}_{sequence.ToString(CultureInfo.InvariantCulture)}_");
        foreach (var c in purpose.ToLowerInvariant())
        {
            text.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-' ? c : '_');
        }

        // ASCII only by now: one byte per character.
        return text.Length > MaxIdentifierBytes ? text.ToString(0, MaxIdentifierBytes) : text.ToString();
    }

    private static TestDatabaseMode Detect()
    {
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(ConnectionStringVariable)))
        {
            return TestDatabaseMode.External;
        }

        return TestClusterModes.DockerEngineAnswers() ? TestDatabaseMode.Container : TestDatabaseMode.Local;
    }

    private static async Task<PostgresTestServer> StartAsync()
    {
        PostgresTestServer server;
        switch (CurrentMode)
        {
            case TestDatabaseMode.External:
                var external = new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable(ConnectionStringVariable));
                external.Database ??= "postgres";
                server = new(TestDatabaseMode.External, external.ConnectionString, $"PostgreSQL from {ConnectionStringVariable} at {external.Host}:{external.Port}", () => Task.CompletedTask);
                break;
            case TestDatabaseMode.Container:
                var container = new PostgreSqlBuilder(ContainerImage).Build();
                await container.StartAsync();
                var admin = new NpgsqlConnectionStringBuilder(container.GetConnectionString()) { Database = "postgres" };
                server = new(TestDatabaseMode.Container, admin.ConnectionString, $"Testcontainers {ContainerImage} at {admin.Host}:{admin.Port}", () => container.DisposeAsync().AsTask());
                break;
            default:
                var local = LocalPostgresServer.ForRepository(RepositoryRoot.Find(), Console.WriteLine);
                var started = await local.UpAsync();
                server = new(
                    TestDatabaseMode.Local,
                    local.ConnectionString("postgres"),
                    $"local PostgreSQL at {LocalPostgresServer.Host}:{local.Port}{(started ? ", started for this run" : ", already running")}",
                    () => started ? local.DownAsync() : Task.CompletedTask);
                break;
        }

        await server.DropStaleDatabasesAsync();
        Console.WriteLine($"PostgreSQL tests run against the {server.Description}");
        return server;
    }

    /// <summary>At the end of the test run (<see cref="RunEndTestFramework"/>): drops this run's
    /// databases, and stops the server if this run started it. Nothing when no test used one.</summary>
    internal static async Task EndRunAsync()
    {
        if (Shared.IsValueCreated && Shared.Value.IsCompletedSuccessfully)
        {
            await (await Shared.Value).StopAsync();
        }
    }

    private async Task StopAsync()
    {
        List<string> databases;
        lock (_databases)
        {
            databases = [.. _databases];
        }

        try
        {
            NpgsqlConnection.ClearAllPools();
            foreach (var name in databases)
            {
                await DropAsync(name);
            }
        }
        catch (NpgsqlException e)
        {
            await Console.Error.WriteLineAsync($"dropping this run's test databases failed ({e.Message}); a run a day later drops them");
        }

        await _stop();
    }

    /// <summary>Test databases of runs more than a day old: a run that was killed never dropped its own.</summary>
    private async Task DropStaleDatabasesAsync()
    {
        var stale = new List<string>();
        await using (var connection = await OpenAdminAsync())
        {
            await using var list = new NpgsqlCommand("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", connection) { Parameters = { new() { Value = NamePrefix } } };
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var match = TestDatabase().Match(reader.GetString(0));
                if (match.Success
                    && DateTime.TryParseExact(match.Groups["time"].Value, "yyMMddHHmmss", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var createdAt)
                    && DateTime.UtcNow - createdAt > StaleAfter)
                {
                    stale.Add(reader.GetString(0));
                }
            }
        }

        foreach (var name in stale)
        {
            await DropAsync(name);
        }
    }

    private async Task DropAsync(string name)
    {
        await using var connection = await OpenAdminAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {LocalPostgresServer.QuoteIdentifier(name)} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private async Task<NpgsqlConnection> OpenAdminAsync()
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_adminConnectionString) { Pooling = false }.ConnectionString);
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    [GeneratedRegex(@"^test_(?<time>\d{12})_[0-9a-f]{6}_")]
    private static partial Regex TestDatabase();
}
