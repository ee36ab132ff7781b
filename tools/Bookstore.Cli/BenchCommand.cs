using System.Data.Common;
using System.CommandLine;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.LocalKafka;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Outbox;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Telemetry;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bookstore.Cli;

/// <summary><c>./bookstore bench</c>: the messaging library against raw Confluent.Kafka on the same
/// cluster: records per second through the outbox relay and the consumer host, and through a bare
/// producer and consumer.</summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var records = new Option<int>("--records") { Description = "records per measurement", DefaultValueFactory = _ => 200_000 };
        var json = new Option<bool>("--json") { Description = "print JSON" };
        var bench = new Command("bench", "Measure the outbox relay and the consumer host against raw Confluent.Kafka (records/s).") { records, json };
        bench.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var count = parse.GetValue(records);
            if (count is < 1_000 or > 5_000_000)
            {
                throw new LocalKafkaException("--records between 1000 and 5000000.");
            }

            var result = await RunAsync(count, parse.GetValue(json) ? _ => { } : Console.WriteLine, ct);
            Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(result, Json) : string.Empty);
        }));
        return bench;
    }

    private static async Task<BenchResult> RunAsync(int count, Action<string> report, CancellationToken cancellationToken)
    {
        var root = RepositoryRoot.Find();
        var connection = LocalClusterState.ResolveConnection(root) ?? throw new LocalKafkaException("No Kafka cluster is known: run ./bookstore kafka up.");
        var run = DateTime.UtcNow.ToString("MMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);
        var raw = new TopicSpec($"bench-{run}-raw", 6, TimeSpan.FromHours(1));
        var events = new TopicSpec($"bench-{run}-events", 6, TimeSpan.FromHours(1));
        var cluster = connection.IsLegacyBroker ? LocalKafkaCluster.ForRepository(root, report) : null;
        if (cluster is not null)
        {
            await cluster.CreateTopicsAsync([raw, events], cancellationToken);
        }
        else
        {
            await TopicAdmin.EnsureTopicsAsync(connection, [raw, events], TimeSpan.FromSeconds(60));
        }

        var data = Directory.CreateTempSubdirectory("bookstore-bench-");
        try
        {
            RawProduce(connection, raw.Name, Math.Min(count, 50_000)); // warm-up: the first run after a cluster starts is slow
            var rawProduced = RawProduce(connection, raw.Name, count);
            report($"raw producer (acks=all, linger 5 ms):  {rawProduced:N0} records/s");
            var relayed = await RelayAsync(connection, events, count, data.FullName, cancellationToken);
            report($"outbox relay (acks=all, in order):     {relayed:N0} records/s ({relayed / rawProduced:P0} of raw)");
            var rawConsumed = RawConsume(connection, events.Name, events.Partitions, count);
            report($"raw consumer (fetch backoff 10 ms):    {rawConsumed:N0} records/s");
            var hosted = await ConsumerHostAsync(connection, events, count, data.FullName, cancellationToken);
            report($"consumer host (dedup, one transaction per batch, offsets after commit): {hosted:N0} records/s ({hosted / rawConsumed:P0} of raw)");
            return new BenchResult(count, Math.Round(rawProduced), Math.Round(relayed), Math.Round(rawConsumed), Math.Round(hosted));
        }
        finally
        {
            data.Delete(recursive: true);
            if (cluster is not null)
            {
                await cluster.DeleteTopicsAsync([raw.Name, events.Name], CancellationToken.None);
            }
            else
            {
                await TopicAdmin.DeleteTopicsAsync(connection, [raw.Name, events.Name], TimeSpan.FromSeconds(30));
            }
        }
    }

    private static double RawProduce(KafkaConnection connection, string topic, int count)
    {
        var config = connection.ApplyTo(new ProducerConfig { Acks = Acks.All, LingerMs = 5 });
        using var producer = new ProducerBuilder<string, string>(config).SetLogHandler((_, _) => { }).Build();
        var value = new string('x', 200);
        var failed = 0;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            while (true)
            {
                try
                {
                    producer.Produce(topic, new Message<string, string> { Key = $"k{i % 1000}", Value = value }, r => { if (r.Error.IsError) { Interlocked.Increment(ref failed); } });
                    break;
                }
                catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(10));
                }
            }
        }

        producer.Flush(TimeSpan.FromMinutes(5));
        Require(failed == 0, $"{failed} raw deliveries failed");
        return count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Fills an outbox with CloudEvents in one transaction, then times the relay emptying it.</summary>
    private static async Task<double> RelayAsync(KafkaConnection connection, TopicSpec topic, int count, string data, CancellationToken cancellationToken)
    {
        var options = Options(connection, data);
        var database = ServiceDatabase.Open(options, string.Empty);
        var definition = EventCatalog.BookPriceChanged with { Topic = topic };
        await database.WriteAsync(async transaction =>
        {
            for (var i = 0; i < count; i++)
            {
                await Outbox.AddRecordAsync(transaction, EventSerializer.Serialize(definition, new BookPriceChanged($"978-{i % 1000:D10}", "Bench", 10m, i), "bench"));
            }
        }, cancellationToken);

        using var producer = new KafkaProducer(options, NullLogger<KafkaProducer>.Instance);
        await using var metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var relay = new OutboxRelay(database, producer, new OutboxSignal(), options, new MessagingMetrics(metrics.GetRequiredService<IMeterFactory>(), database, options), NullLogger<OutboxRelay>.Instance);
        var clock = Stopwatch.StartNew();
        await relay.StartAsync(cancellationToken);
        Require(await Poll.UntilAsync(() => relay.Published >= count, TimeSpan.FromMinutes(5), TimeSpan.FromMilliseconds(20), cancellationToken), "the relay published everything");
        var elapsed = clock.Elapsed;
        await relay.StopAsync(CancellationToken.None);
        return count / elapsed.TotalSeconds;
    }

    private static double RawConsume(KafkaConnection connection, string topic, int partitions, int count)
    {
        var config = KafkaClientConfigs.Consumer(connection, $"bench-raw-{Guid.NewGuid():N}", "bench");
        using var consumer = new ConsumerBuilder<byte[], byte[]>(config).SetLogHandler((_, _) => { }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var clock = Stopwatch.StartNew();
        var read = 0;
        while (read < count && clock.Elapsed < TimeSpan.FromMinutes(5))
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is not null)
            {
                read++;
            }
        }

        Require(read == count, $"the raw consumer read {read} of {count}");
        return count / clock.Elapsed.TotalSeconds;
    }

    private static async Task<double> ConsumerHostAsync(KafkaConnection connection, TopicSpec topic, int count, string data, CancellationToken cancellationToken)
    {
        var options = Options(connection, data);
        options.DatabasePath = Path.Combine(data, "consumer.db");
        var registration = new ConsumerRegistration().HandleAll<CountingHandler>(topic);
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton(options)
            .AddSingleton(_ => ServiceDatabase.Open(options, string.Empty))
            .AddSingleton<OutboxSignal>()
            .AddSingleton<Outbox>()
            .AddConsumer(registration)
            .BuildServiceProvider();
        await using (services)
        {
            var host = services.GetRequiredService<ConsumerHost>();
            await host.StartAsync(cancellationToken);
            // Timed from the first processed record: joining the group (seconds on 0.9) is not throughput.
            Require(await Poll.UntilAsync(() => host.Processed > 0, TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(1), cancellationToken), "the consumer host joined its group and processed a record");
            var clock = Stopwatch.StartNew();
            var first = host.Processed;
            Require(await Poll.UntilAsync(() => host.Processed >= count, TimeSpan.FromMinutes(5), TimeSpan.FromMilliseconds(20), cancellationToken), $"the consumer host processed {host.Processed} of {count}");
            var elapsed = clock.Elapsed;
            await host.StopAsync(CancellationToken.None);
            return (count - first) / elapsed.TotalSeconds;
        }
    }

    private static MessagingOptions Options(KafkaConnection connection, string data) => new()
    {
        ServiceName = $"bench-{Guid.NewGuid():N}",
        BootstrapServers = connection.BootstrapServers,
        BrokerVersion = connection.BrokerVersion,
        SecurityProtocol = connection.Security.Protocol.ToString(),
        SaslMechanism = connection.Security.Mechanism?.ToString(),
        SaslUsername = connection.Security.Username,
        SaslPassword = connection.Security.Password,
        SslCaLocation = connection.Security.CaLocation,
        DatabasePath = Path.Combine(data, "relay.db"),
        // The bench's topics are not the suite's, so there is no safe horizon to derive; its database is thrown away.
        ProcessedEventsRetention = TimeSpan.FromDays(1),
    };

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new LocalKafkaException($"Benchmark failed: {what}.");
        }
    }

    private sealed class CountingHandler : IEventBatchHandler
    {
        public Task HandleAsync(DbTransaction transaction, IReadOnlyList<ConsumedEvent> events, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

internal sealed record BenchResult(int Records, double RawProducerPerSecond, double OutboxRelayPerSecond, double RawConsumerPerSecond, double ConsumerHostPerSecond);
