using Bookstore.LocalKafka;
using System.CommandLine;
using System.Diagnostics;
using Bookstore.Messaging;

namespace Bookstore.Cli;

/// <summary><c>./bookstore up | down | logs</c>: the whole suite on this machine, no Docker needed.</summary>
internal static class SuiteCommands
{
    public static IEnumerable<Command> Create()
    {
        var database = new Option<string>("--db")
        {
            Description = "where the services keep their state: sqlite (files under .bookstore/data, nothing to install) or postgres (the local server of ./bookstore db, started if needed)",
            DefaultValueFactory = _ => "sqlite",
        };
        database.AcceptOnlyFromAmong("sqlite", "postgres");
        var up = new Command("up", "Build once, start the local Kafka cluster and the five services on loopback, wait until all are ready.") { database };
        up.SetAction((parse, ct) => CommandRunner.Run(() => Suite().UpAsync(Enum.Parse<SuiteDatabase>(parse.GetValue(database)!, ignoreCase: true), ct)));

        var down = new Command("down", "Stop every service instance (gracefully), then the cluster and the local PostgreSQL; no process is left.");
        down.SetAction((_, ct) => CommandRunner.Run(() => Suite().DownAsync(ct)));

        var service = new Argument<string>("SERVICE") { Description = "orders, inventory, payments, notifications or analytics (add #2 for a second instance)" };
        var follow = new Option<bool>("--follow", "-f") { Description = "keep printing as the log grows" };
        var logs = new Command("logs", "Print a service's log.") { service, follow };
        logs.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var (name, instance) = ParseInstance(parse.GetValue(service)!);
            var file = Suite().LogFile(ServiceSpec.Find(name), instance);
            if (!File.Exists(file))
            {
                throw new InvalidOperationException($"{file} does not exist: has {name} been started (./bookstore up)?");
            }

            using var tail = Process.Start("tail", parse.GetValue(follow) ? ["-n", "+1", "-f", file] : ["-n", "+1", file])!;
            await tail.WaitForExitAsync(ct);
        }));

        return [up, down, logs];
    }

    private static LocalSuite Suite() => new(RepositoryRoot.Find(), Console.WriteLine);

    private static (string Name, int Instance) ParseInstance(string text)
    {
        var parts = text.Split('#', 2);
        return parts.Length == 2 && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var instance) && instance >= 1
            ? (parts[0], instance)
            : (parts[0], 1);
    }
}
