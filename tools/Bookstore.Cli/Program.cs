using System.CommandLine;
using Bookstore.Cli;

var root = new RootCommand("Bookstore on Kafka: run the local cluster and the suite.");
root.Add(KafkaCommands.Create());
root.Add(DbCommands.Create());
root.Add(OrderCommand.Create());
root.Add(LoadCommand.Create());
root.Add(BenchCommand.Create());
foreach (var command in SuiteCommands.Create().Concat(StatusCommands.Create()))
{
    root.Add(command);
}

return await root.Parse(args).InvokeAsync();
