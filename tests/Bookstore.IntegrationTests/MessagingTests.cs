using System.Collections.Concurrent;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Confluent.Kafka;
using Dapper;
using Microsoft.AspNetCore.Builder;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using OutboxWriter = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.IntegrationTests;

/// <summary>The shared messaging library on the real cluster and a real SQLite database: the
/// outbox publishes exactly what committed, the consumer host processes each event once, and
/// what it cannot process ends in the dead-letter topic without stopping it.</summary>
public abstract class MessagingTests(KafkaClusterFixture fixture, StorageBackend backend) : IDisposable
{
    // No key on event_id: an event handled twice shows as two rows instead of failing its insert
    // (which would turn a broken dedup into a dead letter and hide it).
    private const string Schema = "CREATE TABLE IF NOT EXISTS handled (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, order_id TEXT NOT NULL);";
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-messaging-");

    // One database per test: a restarted service finds what it left.
    private TestDatabase? _database;

    /// <summary>Tests of both backends share the cluster: their namespaces differ.</summary>
    private string Purpose => backend == StorageBackend.Sqlite ? string.Empty : "pg-";

    public void Dispose()
    {
        _data.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    [Fact]
    public async Task Committed_events_are_published_and_handled_once_and_handler_events_follow()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-pipeline", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        await using var app = await StartAsync(ns);
        var orders = Enumerable.Range(0, 200).Select(i => $"ORD-{i:D4}").ToList();

        await CommitAsync(app, orders.Select(Placed));
        // An event added by a transaction that rolls back is never published.
        await using (var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync())
        await using (var rolledBack = (DbTransaction)await connection.BeginTransactionAsync())
        {
            await app.Services.GetRequiredService<OutboxWriter>().AddAsync(rolledBack, Placed("ORD-ROLLED-BACK"));
            await rolledBack.RollbackAsync();
        }

        await CommitAsync(app, [Placed("ORD-LAST")]);

        await WaitForHandledAsync(app, orders.Count + 1);
        var handled = await QueryAsync<string>(app, "SELECT order_id FROM handled");
        Assert.Equal([.. orders, "ORD-LAST"], handled.Order());
        Assert.DoesNotContain("ORD-ROLLED-BACK", handled);

        // The handler's own events went out through the same outbox, keyed by order id.
        var reserved = await ReadWhenCountAsync(ns + Topics.InventoryEvents.Name, Topics.InventoryEvents.Partitions, orders.Count + 1);
        Assert.Equal([.. orders, "ORD-LAST"], reserved.Select(r => r.Message.Key).Order());
        Assert.All(reserved, r => Assert.Equal(EventCatalog.StockReserved.TypeName, EventSerializer.Parse(r.Message.Value).Type));
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");
    }

    [Fact]
    public async Task A_redelivered_event_is_processed_once()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-dedup", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        var record = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-TWICE"), "test");
        var marker = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-TWICE"), "test");
        await TestClients.ProduceAllAsync(fixture.Connection, ns + record.Topic, [(record.Key, record.Value), (record.Key, record.Value), (marker.Key, marker.Value)]);

        await using var app = await StartAsync(ns);

        // Same key, same partition: once the third (a distinct event) is handled, the duplicate was seen.
        await WaitForHandledAsync(app, 2);
        Assert.Equal(new[] { marker.EventId, record.EventId }.Order(), (await QueryAsync<string>(app, "SELECT event_id FROM handled")).Order());
        Assert.Equal(2, app.Services.GetRequiredService<ConsumerHost>().Processed);
        Assert.Equal(0, app.Services.GetRequiredService<ConsumerHost>().DeadLettered);
        // The handler's answers went out, and nothing else did: the duplicate was neither handled again nor dead-lettered.
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");
        Assert.Equal(2, TestClients.ReadToEnd(fixture.Connection, ns + Topics.InventoryEvents.Name, Topics.InventoryEvents.Partitions).Count);
        Assert.Empty(TestClients.ReadToEnd(fixture.Connection, ns + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions));
    }

    [Fact]
    public async Task Processed_event_ids_older_than_the_horizon_are_pruned_and_younger_ones_still_stop_a_redelivery()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-prune", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        var horizon = TimeSpan.FromSeconds(3);
        await using var app = await StartAsync(ns, new Dictionary<string, string?>
        {
            ["Messaging:ProcessedEventsRetention"] = horizon.ToString(),
            ["Messaging:PruneInterval"] = "00:00:00.5",
        });
        var old = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-OLD"), "test");
        await TestClients.ProduceAllAsync(fixture.Connection, ns + Topics.BookOrders.Name, [(old.Key, old.Value)]);
        await WaitForHandledAsync(app, 1);
        Assert.Equal([old.EventId], await QueryAsync<string>(app, "SELECT event_id FROM processed_events"));

        // Once older than the horizon, its record goes; what the handler wrote stays.
        Assert.True(
            await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM processed_events")).Single() == 0, TestClients.Deadline),
            "the old record is pruned");
        Assert.True(app.Services.GetRequiredService<Pruner>().Pruned >= 1);
        Assert.Equal(["ORD-OLD"], await QueryAsync<string>(app, "SELECT order_id FROM handled"));

        // A young record still turns a re-delivery into a no-op.
        var young = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-YOUNG"), "test");
        var marker = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-YOUNG"), "test");
        await TestClients.ProduceAllAsync(fixture.Connection, ns + Topics.BookOrders.Name, [(young.Key, young.Value), (young.Key, young.Value), (marker.Key, marker.Value)]);
        // Same key, same partition: once the marker is handled, the duplicate before it was seen.
        await WaitForHandledAsync(app, 3);
        Assert.Equal(new[] { old.EventId, young.EventId, marker.EventId }.Order(), (await QueryAsync<string>(app, "SELECT event_id FROM handled")).Order());
    }

    /// <summary>Kafka 0.9 deletes a partition's records only once a later record rolled their
    /// segment, and a group's committed offsets expire: so an event older than the processed-event
    /// ids kept can come back. Its id may have been pruned, so it must be neither applied (its work
    /// could be done twice) nor dropped, but dead-lettered for an operator.</summary>
    [Fact]
    public async Task An_event_older_than_the_processed_event_horizon_is_dead_lettered_not_applied()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-too-old", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        await using var app = await StartAsync(ns);
        var horizon = app.Services.GetRequiredService<Pruner>().ProcessedEventsHorizon;
        var record = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-ANCIENT"), "test");
        var ancient = EventSerializer.Parse(record.Value) with { Time = DateTimeOffset.UtcNow - horizon - TimeSpan.FromHours(1) };
        var after = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-RECENT"), "test");
        await TestClients.ProduceAllAsync(
            fixture.Connection,
            ns + Topics.BookOrders.Name,
            [(record.Key, JsonSerializer.Serialize(ancient, EventSerializer.Options)), (after.Key, after.Value)]);

        await WaitForHandledAsync(app, 1);
        Assert.Equal(["ORD-RECENT"], await QueryAsync<string>(app, "SELECT order_id FROM handled"));
        var letter = JsonSerializer.Deserialize<DeadLetter>(
            Assert.Single(await ReadWhenCountAsync(ns + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions, 1)).Message.Value, EventSerializer.Options)!;
        Assert.Contains("cannot tell whether this one was", letter.Error, StringComparison.Ordinal);
        Assert.Equal(record.EventId, letter.EventId);
        Assert.Equal(1, app.Services.GetRequiredService<ConsumerHost>().DeadLettered);
    }

    /// <summary>An outsider's garbage that escapes to more than the broker's limit as a dead letter
    /// (170 KB of '&lt;' is six times that as JSON) must not stop the outbox: the letter is cut to
    /// fit and says so, and what the consumer handles next is published.</summary>
    [Fact]
    public async Task An_oversized_poison_message_is_dead_lettered_truncated_and_the_outbox_carries_on()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-oversized", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        var garbage = new string('<', 170_000);
        var after = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-AFTER-GARBAGE"), "test");
        var sent = await TestClients.ProduceAllAsync(fixture.Connection, ns + Topics.BookOrders.Name, [("ORD-G", garbage), ("ORD-G", after.Value)]);

        await using var app = await StartAsync(ns);

        await WaitForHandledAsync(app, 1);
        // The handler's StockReserved is published although the dead letter before it in the outbox is huge.
        var reserved = await ReadWhenCountAsync(ns + Topics.InventoryEvents.Name, Topics.InventoryEvents.Partitions, 1);
        Assert.Equal("ORD-AFTER-GARBAGE", Assert.Single(reserved).Message.Key);
        var letter = JsonSerializer.Deserialize<DeadLetter>(
            Assert.Single(await ReadWhenCountAsync(ns + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions, 1)).Message.Value, EventSerializer.Options)!;
        Assert.True(letter.ValueTruncated);
        Assert.Equal(garbage.Length, letter.ValueBytes);
        Assert.StartsWith("<<<<", letter.Value, StringComparison.Ordinal);
        Assert.True(letter.Value!.Length < garbage.Length);
        Assert.Equal(sent[0].Offset.Value, letter.Offset);
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");
        Assert.Empty(await QueryAsync<long>(app, "SELECT seq FROM outbox_parked"));
    }

    [Fact]
    public async Task Poison_messages_unknown_types_and_failing_handlers_are_dead_lettered_and_the_consumer_carries_on()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "messaging-poison", Topics.BookOrders, Topics.InventoryEvents, Topics.DeadLetters);
        var unknown = JsonSerializer.Serialize(new { specversion = "1.0", id = "evt-unknown", source = "test", type = "bookstore.order.teleported.v9", data = new { } });
        var failing = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("fail-always"), "test");
        var flaky = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("fail-once"), "test");
        var after = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-AFTER"), "test");
        var sent = await TestClients.ProduceAllAsync(fixture.Connection, ns + Topics.BookOrders.Name,
        [
            ("ORD-P", "{ this is not json"),
            ("ORD-P", unknown),
            ("ORD-P", failing.Value),
            ("ORD-P", flaky.Value),
            ("ORD-P", after.Value),
        ]);

        await using var app = await StartAsync(ns);

        await WaitForHandledAsync(app, 2);
        Assert.Equal(["ORD-AFTER", "fail-once"], (await QueryAsync<string>(app, "SELECT order_id FROM handled")).Order());

        var letters = (await ReadWhenCountAsync(ns + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions, 3))
            .Select(r => JsonSerializer.Deserialize<DeadLetter>(r.Message.Value, EventSerializer.Options)!)
            .OrderBy(d => d.Offset)
            .ToList();
        Assert.Equal(sent.Take(3).Select(d => d.Offset.Value), letters.Select(d => d.Offset));
        Assert.All(letters, d =>
        {
            Assert.Equal(Topics.BookOrders.Name, d.Topic);
            Assert.Equal(sent[0].Partition.Value, d.Partition);
            Assert.Equal(ns + "messaging-test", d.Group);
            Assert.Equal("ORD-P", d.Key);
        });
        Assert.Equal("{ this is not json", letters[0].Value);
        Assert.Contains("not a CloudEvent", letters[0].Error, StringComparison.Ordinal);
        Assert.Contains("teleported", letters[1].Error, StringComparison.Ordinal);
        Assert.Equal((1, 1, 3), (letters[0].Attempts, letters[1].Attempts, letters[2].Attempts));
        Assert.Equal(failing.EventId, letters[2].EventId);
        Assert.Contains("always fails", letters[2].Error, StringComparison.Ordinal);
    }

    private static OrderPlaced Placed(string orderId) => new(orderId, "customer-1", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m);

    private async Task<WebApplication> StartAsync(string ns, IReadOnlyDictionary<string, string?>? settings = null) =>
        await TestService.StartAsync(
            fixture,
            "messaging-test",
            ns,
            _database ??= await TestDatabase.CreateAsync(backend, _data.FullName, $"messaging-{ns}"),
            Schema,
            consumers => consumers.Handle<OrderPlaced, RecordingHandler>(),
            builder => builder.Services.AddSingleton<RecordingHandler>(),
            settings);

    private static async Task CommitAsync(WebApplication app, IEnumerable<OrderPlaced> events)
    {
        var outbox = app.Services.GetRequiredService<OutboxWriter>();
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        await using var transaction = (DbTransaction)await connection.BeginTransactionAsync();
        foreach (var e in events)
        {
            await outbox.AddAsync(transaction, e);
        }

        await transaction.CommitAsync();
        outbox.Committed();
    }

    private static async Task<List<T>> QueryAsync<T>(WebApplication app, string sql)
    {
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        return [.. await connection.QueryAsync<T>(sql)];
    }

    private static async Task WaitForHandledAsync(WebApplication app, int count)
    {
        var reached = await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM handled")).Single() >= count, TestClients.Deadline);
        Assert.True(reached, $"{count} events handled within {TestClients.Deadline}");
    }

    private async Task<List<ConsumeResult<string, string>>> ReadWhenCountAsync(string topic, int partitions, int count)
    {
        List<ConsumeResult<string, string>> read = [];
        var reached = await Poll.UntilAsync(
            () =>
            {
                read = TestClients.ReadToEnd(fixture.Connection, topic, partitions);
                return read.Count >= count;
            },
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(reached, $"{count} records on {topic}; saw {read.Count}");
        return read;
    }

    /// <summary>Records each event in the batch's transaction and answers with a StockReserved;
    /// fails for order ids that ask for it.</summary>
    private sealed class RecordingHandler : IEventHandler<OrderPlaced>
    {
        private readonly ConcurrentDictionary<string, int> _attempts = new();

        public async Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken)
        {
            var attempt = _attempts.AddOrUpdate(data.OrderId, 1, (_, n) => n + 1);
            await context.Connection.ExecuteAsync(
                "INSERT INTO handled (event_id, order_id) VALUES (@Id, @OrderId)",
                new { context.Event.Id, data.OrderId },
                context.Transaction);
            if (data.OrderId == "fail-always" || (data.OrderId == "fail-once" && attempt == 1))
            {
                throw new InvalidOperationException($"{data.OrderId} always fails (attempt {attempt})");
            }

            await context.PublishAsync(new StockReserved(data.OrderId, data.CustomerId, data.Lines, data.Total));
        }
    }
}

[Collection(KafkaCollection.Name)]
public sealed class MessagingTestsOnSqlite(KafkaClusterFixture fixture) : MessagingTests(fixture, StorageBackend.Sqlite);

[Collection(KafkaCollection.Name)]
public sealed class MessagingTestsOnPostgres(KafkaClusterFixture fixture) : MessagingTests(fixture, StorageBackend.Postgres);
