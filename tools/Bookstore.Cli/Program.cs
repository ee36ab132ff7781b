using System.CommandLine;
using Bookstore.Cli;

var root = new RootCommand("Bookstore on Kafka: run the local cluster and the suite.")
{
    KafkaCommands.Create(),
};
return await root.Parse(args).InvokeAsync();
