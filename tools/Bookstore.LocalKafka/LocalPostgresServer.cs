using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Bookstore.Contracts;
using Bookstore.Messaging;
using Npgsql;

namespace Bookstore.LocalKafka;

/// <summary>A real PostgreSQL server of this checkout, from Debian's package binaries, as the
/// local Kafka is a real cluster: its data under <c>.bookstore/postgres/</c>, on 127.0.0.1 over
/// TCP only, a superuser <c>bookstore</c> with a generated password, one database per service.</summary>
public sealed class LocalPostgresServer
{
    public const int DefaultPort = 5433;
    public const string PortVariable = "BOOKSTORE_POSTGRES_PORT";
    public const string Host = "127.0.0.1";
    public const string SuperUser = "bookstore";

    /// <summary>The simulated payment gateway's ledger: the gateway is not the payment service, so
    /// it keeps a database of its own.</summary>
    public const string GatewayDatabase = "payment-gateway";

    /// <summary>PostgreSQL refuses to run as root; Debian's package creates this user.</summary>
    private const string ServerOsUser = "postgres";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Action<string> _report;

    public LocalPostgresServer(string repositoryRoot, int port, Action<string>? report = null)
    {
        RepositoryRoot = repositoryRoot ?? throw new ArgumentNullException(nameof(repositoryRoot));
        Port = port;
        Home = Path.Combine(repositoryRoot, ".bookstore", "postgres");
        _report = report ?? (_ => { });
    }

    /// <summary>Each service's database (named after its consumer group) and the gateway's.</summary>
    public static IReadOnlyList<string> SuiteDatabases { get; } = [.. ConsumerGroups.All, GatewayDatabase];

    public string RepositoryRoot { get; }

    /// <summary>The port this server listens on once started (a running server keeps its own).</summary>
    public int Port { get; }

    public string Home { get; }

    public string DataDirectory => Path.Combine(Home, "data");

    public string LogFile => Path.Combine(Home, "server.log");

    public string StateFile => LocalPostgresState.PathFor(RepositoryRoot);

    /// <summary>The port: <paramref name="port"/>, else <c>BOOKSTORE_POSTGRES_PORT</c>, else the
    /// one the last <c>db up</c> recorded, else 5433 (never the package cluster's 5432).</summary>
    public static LocalPostgresServer ForRepository(string repositoryRoot, Action<string>? report = null, int? port = null)
    {
        var configured = Environment.GetEnvironmentVariable(PortVariable);
        int? fromEnvironment = null;
        if (!string.IsNullOrWhiteSpace(configured))
        {
            fromEnvironment = int.TryParse(configured.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed is > 0 and < 65536
                ? parsed
                : throw new LocalKafkaException($"{PortVariable}: '{configured}' is not a TCP port.");
        }

        return new LocalPostgresServer(repositoryRoot, port ?? fromEnvironment ?? LocalPostgresState.TryRead(repositoryRoot)?.Port ?? DefaultPort, report);
    }

    /// <summary>The pid of this checkout's running postmaster, or null.</summary>
    public int? RunningPid() => ReadPostmaster()?.Pid;

    /// <summary>Creates the cluster when there is none, starts it when it is not running, waits
    /// until it accepts connections, and creates the suite's databases that are missing.
    /// Harmless when it already runs.</summary>
    /// <returns>Whether this call started the server.</returns>
    public async Task<bool> UpAsync(CancellationToken cancellationToken = default)
    {
        var running = ReadPostmaster();
        if (running is not null && running.Port != Port)
        {
            throw new LocalKafkaException(
                $"The local PostgreSQL already runs on port {running.Port.ToString(CultureInfo.InvariantCulture)} (pid {running.Pid.ToString(CultureInfo.InvariantCulture)}), " +
                $"not {Port.ToString(CultureInfo.InvariantCulture)}: stop it first (./bookstore db down), or use its port.");
        }

        var binaries = PostgresBinaries.Find(DataDirectory);
        var clock = Stopwatch.StartNew();
        var started = false;
        if (running is null)
        {
            await PrepareFoldersAsync(cancellationToken);
            var password = await EnsureClusterAsync(binaries, cancellationToken);
            new LocalPostgresState(Host, Port, SuperUser, password, binaries.Version).Write(RepositoryRoot);
            await StartAsync(binaries, cancellationToken);
            started = true;
        }

        await WaitAcceptingAsync(cancellationToken);
        foreach (var database in SuiteDatabases)
        {
            await EnsureDatabaseAsync(database, cancellationToken);
        }

        var pid = RunningPid();
        _report(started
            ? $"PostgreSQL {binaries.Version} up in {clock.Elapsed.TotalSeconds:0.0} s on {Host}:{Port} (pid {pid})"
            : $"PostgreSQL {binaries.Version} already running on {Host}:{Port} (pid {pid})");
        return started;
    }

    /// <summary>Stops the server (fast shutdown: sessions are ended, committed data is safe) and
    /// waits until its last process is gone; <paramref name="purge"/> then deletes its folder.</summary>
    public async Task DownAsync(bool purge = false, CancellationToken cancellationToken = default)
    {
        if (ReadPostmaster() is { } running)
        {
            var binaries = PostgresBinaries.Find(DataDirectory);
            var stop = await RunAsync([binaries.PgCtl, "stop", "-D", DataDirectory, "-m", "fast", "-w", "-t", "60", "-s"], asServerUser: true, cancellationToken);
            if (stop.ExitCode != 0 && DetachedProcess.IsAlive(running.Pid))
            {
                _report($"pg_ctl stop failed ({stop.Output.Trim()}); killing pid {running.Pid}");
                DetachedProcess.Kill(running.Pid);
            }

            // The postmaster waits for its children before it exits: once it is gone, so are they.
            if (!await DetachedProcess.WaitForExitAsync(running.Pid, TimeSpan.FromSeconds(10), cancellationToken))
            {
                throw new LocalKafkaException($"PostgreSQL (pid {running.Pid}) did not exit. Last lines of {LogFile}:\n{DetachedProcess.Tail(LogFile, 25)}");
            }

            _report($"PostgreSQL stopped (pid {running.Pid})");
        }
        else
        {
            _report("PostgreSQL is not running");
        }

        if (purge && Directory.Exists(Home))
        {
            Directory.Delete(Home, recursive: true);
            _report($"deleted {Home}");
        }
    }

    public async Task<PostgresStatus> StatusAsync(CancellationToken cancellationToken = default)
    {
        var running = ReadPostmaster();
        var state = LocalPostgresState.TryRead(RepositoryRoot);
        var version = state?.Version ?? ReadDataVersion();
        if (running is null)
        {
            return new PostgresStatus(false, null, Port, version, DataDirectory, StateFile, [], Directory.Exists(DataDirectory) ? "not running" : "never started: ./bookstore db up");
        }

        try
        {
            await using var connection = await OpenAdminAsync(cancellationToken);
            await using var command = new NpgsqlCommand(
                "SELECT datname, pg_database_size(datname) FROM pg_database WHERE NOT datistemplate ORDER BY datname", connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var databases = new List<PostgresDatabaseStatus>();
            while (await reader.ReadAsync(cancellationToken))
            {
                databases.Add(new PostgresDatabaseStatus(reader.GetString(0), reader.GetInt64(1)));
            }

            return new PostgresStatus(true, running.Pid, running.Port, version, DataDirectory, StateFile, databases, null);
        }
        catch (Exception e) when (e is NpgsqlException or LocalKafkaException)
        {
            return new PostgresStatus(true, running.Pid, running.Port, version, DataDirectory, StateFile, [], e.Message);
        }
    }

    /// <summary>An Npgsql connection string for <paramref name="database"/> on this server, over
    /// TCP with the generated password.</summary>
    public string ConnectionString(string database)
    {
        var state = LocalPostgresState.TryRead(RepositoryRoot)
            ?? throw new LocalKafkaException($"The local PostgreSQL has never been started (no {StateFile}): ./bookstore db up.");
        return new NpgsqlConnectionStringBuilder
        {
            Host = state.Host,
            Port = state.Port,
            Username = state.User,
            Password = state.Password,
            Database = database,
        }.ConnectionString;
    }

    /// <summary>Creates <paramref name="name"/> unless it exists (two callers at once are fine).</summary>
    public async Task EnsureDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAdminAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection) { Parameters = { new() { Value = name } } };
        if (await exists.ExecuteScalarAsync(cancellationToken) is not null)
        {
            return;
        }

        try
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE {QuoteIdentifier(name)}", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
            _report($"created database {name}");
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Created by a concurrent caller between our check and our CREATE.
        }
    }

    /// <summary>Drops <paramref name="name"/> if it exists, ending its sessions first.</summary>
    public async Task DropDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAdminAsync(cancellationToken);
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {QuoteIdentifier(name)} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A PostgreSQL identifier as a quoted literal name: service names contain dashes.</summary>
    public static string QuoteIdentifier(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    /// <summary>The settings we own, rewritten on every start (included from postgresql.conf).</summary>
    internal string ServerSettings() => string.Join('\n',
        "# written by ./bookstore db up; edits are overwritten",
        $"port = {Port.ToString(CultureInfo.InvariantCulture)}",
        // Loopback and TCP only: no socket file anywhere, every client authenticates with the password.
        $"listen_addresses = '{Host}'",
        "unix_socket_directories = ''",
        "password_encryption = 'scram-sha-256'",
        // Five services, several instances each, each with a connection pool, plus tests.
        "max_connections = 200",
        "shared_buffers = '128MB'",
        // fsync and full_page_writes stay on: a dev server that loses committed rows on a crash
        // would hide exactly the bugs the SIGKILL tests look for.
        "fsync = on",
        "timezone = 'UTC'",
        "log_timezone = 'UTC'",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        string.Empty);

    private async Task PrepareFoldersAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Home);
        if (!UnixUser.IsRoot)
        {
            return;
        }

        if ((await RunAsync(["id", "-u", ServerOsUser], asServerUser: false, cancellationToken)).ExitCode != 0)
        {
            throw new LocalKafkaException(
                $"PostgreSQL refuses to run as root and there is no '{ServerOsUser}' user to run it as: " +
                "sudo apt-get install -y postgresql creates it (or run ./bookstore as an ordinary user).");
        }

        var blocking = await FirstFolderBlockingServerUserAsync(Home, cancellationToken);
        if (blocking is not null)
        {
            throw new LocalKafkaException(PostgresFolderAccess.Explain(blocking, ServerOsUser, DataDirectory));
        }
    }

    private async Task<string?> FirstFolderBlockingServerUserAsync(string folder, CancellationToken cancellationToken)
    {
        // Asked of the user itself (test -x as postgres), so groups and ACLs count as they will for the server.
        var verdicts = new Dictionary<string, bool>();
        foreach (var dir in Ancestors(folder))
        {
            verdicts[dir] = (await RunAsync(["test", "-x", dir], asServerUser: true, cancellationToken)).ExitCode == 0;
        }

        return PostgresFolderAccess.FirstBlockingFolder(folder, dir => verdicts.GetValueOrDefault(dir, true));
    }

    private static IEnumerable<string> Ancestors(string folder)
    {
        for (var dir = new DirectoryInfo(Path.GetFullPath(folder)); dir is not null; dir = dir.Parent)
        {
            yield return dir.FullName;
        }
    }

    /// <summary>Runs initdb when the data folder holds no cluster yet; returns the superuser's password.</summary>
    private async Task<string> EnsureClusterAsync(PostgresBinaries binaries, CancellationToken cancellationToken)
    {
        if (File.Exists(Path.Combine(DataDirectory, "PG_VERSION")))
        {
            var recorded = LocalPostgresState.TryRead(RepositoryRoot) ?? throw new LocalKafkaException(
                $"{DataDirectory} holds a cluster but {StateFile}, the only copy of its password, is gone. " +
                "Start over with ./bookstore db down --purge (this deletes the local databases).");
            await WriteSettingsAsync(cancellationToken);
            return recorded.Password;
        }

        if (OperatingSystem.IsWindows())
        {
            throw new LocalKafkaException("The local PostgreSQL runs Debian's server binaries: Linux only.");
        }

        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var passwordFile = Path.Combine(Home, "initdb-password");
        await File.WriteAllTextAsync(passwordFile, password + "\n", cancellationToken);
        File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        try
        {
            await GiveToServerUserAsync(DataDirectory, cancellationToken);
            await GiveToServerUserAsync(passwordFile, cancellationToken);
            _report($"initdb: PostgreSQL {binaries.Version} cluster in {DataDirectory}");
            var initdb = await RunAsync(
                [binaries.InitDb, "-D", DataDirectory, "-E", "UTF8", "--no-locale", "--auth=scram-sha-256", "-U", SuperUser, $"--pwfile={passwordFile}", "--no-instructions"],
                asServerUser: true,
                cancellationToken);
            if (initdb.ExitCode != 0)
            {
                throw new LocalKafkaException($"initdb failed:\n{initdb.Output}");
            }
        }
        finally
        {
            File.Delete(passwordFile);
        }

        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), "\ninclude_if_exists = 'bookstore.conf'\n", cancellationToken);
        await WriteSettingsAsync(cancellationToken);
        return password;
    }

    private async Task WriteSettingsAsync(CancellationToken cancellationToken)
    {
        var settings = Path.Combine(DataDirectory, "bookstore.conf");
        await File.WriteAllTextAsync(settings, ServerSettings(), cancellationToken);
        await GiveToServerUserAsync(settings, cancellationToken);
    }

    private async Task StartAsync(PostgresBinaries binaries, CancellationToken cancellationToken)
    {
        if (!DetachedProcess.IsPortFree(Port))
        {
            throw new LocalKafkaException(
                $"Port {Port} for PostgreSQL is taken by another process (see: ss -ltnp 'sport = :{Port}'). " +
                $"Stop it, or choose another port with {PortVariable}=15433.");
        }

        if (!File.Exists(LogFile))
        {
            await File.WriteAllTextAsync(LogFile, string.Empty, cancellationToken);
        }

        await GiveToServerUserAsync(LogFile, cancellationToken);

        // setsid: the server outlives this command and a Ctrl-C in its terminal, like the local Kafka.
        var start = await RunAsync(
            ["setsid", "-w", .. ServerUserPrefix(), binaries.PgCtl, "start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", StartTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture), "-s"],
            asServerUser: false,
            cancellationToken);
        if (start.ExitCode != 0 || ReadPostmaster() is null)
        {
            throw new LocalKafkaException($"PostgreSQL did not start:\n{start.Output}\nLast lines of {LogFile}:\n{DetachedProcess.Tail(LogFile, 25)}");
        }

        _report($"PostgreSQL starting on {Host}:{Port} (pid {RunningPid()})");
    }

    private async Task WaitAcceptingAsync(CancellationToken cancellationToken)
    {
        string? lastError = null;
        var accepted = await Poll.UntilAsync(
            async ct =>
            {
                try
                {
                    await using var connection = await OpenAdminAsync(ct);
                    return true;
                }
                catch (NpgsqlException e)
                {
                    lastError = e.Message;
                    return false;
                }
            },
            StartTimeout,
            TimeSpan.FromMilliseconds(200),
            cancellationToken);
        if (!accepted)
        {
            throw new LocalKafkaException($"PostgreSQL on {Host}:{Port} did not accept a connection within {StartTimeout.TotalSeconds} s ({lastError}). Last lines of {LogFile}:\n{DetachedProcess.Tail(LogFile, 25)}");
        }
    }

    private async Task<NpgsqlConnection> OpenAdminAsync(CancellationToken cancellationToken)
    {
        // Unpooled: an admin command should leave no idle session behind (DROP DATABASE would end it).
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString("postgres")) { Pooling = false, Timeout = 5 };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The live postmaster of our data folder, from its <c>postmaster.pid</c> (pid on line
    /// 1, port on line 4); null when there is none or the recorded process is gone.</summary>
    private Postmaster? ReadPostmaster()
    {
        var file = Path.Combine(DataDirectory, "postmaster.pid");
        string[] lines;
        try
        {
            lines = File.ReadAllLines(file);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return null;
        }

        if (lines.Length < 4
            || !int.TryParse(lines[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            || !int.TryParse(lines[3].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return null;
        }

        // After a crash the file stays: the pid counts only if it is still a postgres of this folder.
        return IsPostmasterOf(pid) ? new Postmaster(pid, port) : null;
    }

    private bool IsPostmasterOf(int pid)
    {
        try
        {
            return DetachedProcess.IsAlive(pid) && File.ReadAllText($"/proc/{pid}/cmdline").Split('\0').Contains(DataDirectory);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private string? ReadDataVersion()
    {
        var file = Path.Combine(DataDirectory, "PG_VERSION");
        return File.Exists(file) ? File.ReadAllText(file).Trim() : null;
    }

    private async Task GiveToServerUserAsync(string path, CancellationToken cancellationToken)
    {
        if (!UnixUser.IsRoot)
        {
            return;
        }

        var chown = await RunAsync(["chown", "-R", $"{ServerOsUser}:", path], asServerUser: false, cancellationToken);
        if (chown.ExitCode != 0)
        {
            throw new LocalKafkaException($"chown {ServerOsUser} {path} failed: {chown.Output}");
        }
    }

    private static string[] ServerUserPrefix() => UnixUser.IsRoot ? ["runuser", "-u", ServerOsUser, "--"] : [];

    private async Task<(int ExitCode, string Output)> RunAsync(IReadOnlyList<string> command, bool asServerUser, CancellationToken cancellationToken)
    {
        IReadOnlyList<string> full = asServerUser ? [.. ServerUserPrefix(), .. command] : command;
        // A folder the server user can enter: runuser keeps the working directory, and initdb and
        // pg_ctl complain when they cannot return to it.
        var start = new ProcessStartInfo(full[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Directory.Exists(Home) ? Home : "/",
        };
        foreach (var argument in full.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new LocalKafkaException($"{full[0]} did not start.");
        var output = new StringBuilder();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        output.Append(await stdout).Append(await stderr);
        return (process.ExitCode, output.ToString());
    }

    private sealed record Postmaster(int Pid, int Port);
}
