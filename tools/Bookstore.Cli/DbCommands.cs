using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bookstore.LocalKafka;

namespace Bookstore.Cli;

/// <summary><c>./bookstore db …</c>: the local PostgreSQL server, for <c>./bookstore up --db postgres</c>.</summary>
internal static class DbCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var port = new Option<int?>("--port") { Description = $"the port (default {LocalPostgresServer.DefaultPort}, or ${LocalPostgresServer.PortVariable}, or the last one used)" };
        var up = new Command("up", "Create and start PostgreSQL on 127.0.0.1 (TCP only, generated password) with a database per service.") { port };
        up.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var server = Server(parse.GetValue(port));
            await server.UpAsync(ct);
            PrintStatus(server, await server.StatusAsync(ct));
        }));

        var json = new Option<bool>("--json") { Description = "print JSON" };
        var status = new Command("status", "Running or not; pid, port, version; the databases and their sizes. Exits 1 when it does not run.") { json };
        status.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var server = Server();
            var result = await server.StatusAsync(ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, Json));
            }
            else
            {
                PrintStatus(server, result);
            }

            if (!result.Running)
            {
                throw new LocalKafkaException("PostgreSQL is not running: ./bookstore db up.");
            }
        }));

        var purge = new Option<bool>("--purge") { Description = "also delete .bookstore/postgres: every database, and the password" };
        var down = new Command("down", "Stop PostgreSQL (fast shutdown); leave no process behind. Data is kept unless --purge.") { purge };
        down.SetAction((parse, ct) => CommandRunner.Run(() => Server().DownAsync(parse.GetValue(purge), ct)));

        var database = new Argument<string>("DATABASE") { Description = "e.g. order-service", DefaultValueFactory = _ => "postgres" };
        var url = new Command("url", "Print a postgresql:// URL (with the password) for psql: psql \"$(./bookstore db url order-service)\".") { database };
        url.SetAction((parse, _) => CommandRunner.Run(() =>
        {
            var state = LocalPostgresState.TryRead(RepositoryRoot.Find()) ?? throw new LocalKafkaException("The local PostgreSQL has never been started: ./bookstore db up.");
            var name = Uri.EscapeDataString(parse.GetValue(database)!);
            Console.WriteLine($"postgresql://{Uri.EscapeDataString(state.User)}:{Uri.EscapeDataString(state.Password)}@{state.Host}:{state.Port.ToString(CultureInfo.InvariantCulture)}/{name}");
            return Task.CompletedTask;
        }));

        return new Command("db", "The local PostgreSQL server (Debian's postgresql package; no Docker needed).") { up, status, down, url };
    }

    private static LocalPostgresServer Server(int? port = null) => LocalPostgresServer.ForRepository(RepositoryRoot.Find(), Console.WriteLine, port);

    private static void PrintStatus(LocalPostgresServer server, PostgresStatus status)
    {
        Console.WriteLine();
        var where = $"{LocalPostgresServer.Host}:{status.Port.ToString(CultureInfo.InvariantCulture)}";
        Console.WriteLine(status.Running
            ? $"PostgreSQL {status.Version ?? "?"} at {where}: up (pid {status.Pid})"
            : $"PostgreSQL {status.Version ?? "?"} at {where}: down ({status.Error})");
        Console.WriteLine($"  data      {Path.GetRelativePath(server.RepositoryRoot, status.DataDirectory)} (log: {Path.GetRelativePath(server.RepositoryRoot, server.LogFile)})");
        Console.WriteLine($"  user      {LocalPostgresServer.SuperUser}; its password is in {Path.GetRelativePath(server.RepositoryRoot, status.StateFile)} (mode 0600)");
        if (!status.Running)
        {
            return;
        }

        if (status.Error is not null)
        {
            Console.WriteLine($"  databases: {status.Error}");
            return;
        }

        Console.WriteLine();
        Console.WriteLine($"  {"database",-24} {"size",10}");
        foreach (var database in status.Databases)
        {
            Console.WriteLine($"  {database.Name,-24} {FormatSize(database.SizeBytes),10}");
        }

        Console.WriteLine();
        Console.WriteLine("  Try: psql \"$(./bookstore db url order-service)\" -c '\\dt'");
    }

    private static string FormatSize(long bytes) => bytes >= 1024 * 1024
        ? $"{(bytes / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture)} MB"
        : $"{(bytes / 1024.0).ToString("0", CultureInfo.InvariantCulture)} kB";
}
