using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Outbox;
using Bookstore.Messaging.Storage;
using Confluent.Kafka;
using Dapper;
using Microsoft.Extensions.DependencyInjection;

namespace Bookstore.UnitTests;

/// <summary>The batch processor on a real SQLite file and no broker: what the consumer host does
/// between a poll and storing the offsets.</summary>
public sealed class BatchProcessorTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("batch-processor-").FullName;

    [Fact]
    public async Task A_batch_handles_each_new_event_once_skips_its_duplicate_and_dead_letters_garbage_in_one_transaction()
    {
        await using var services = Services();
        var processor = services.GetRequiredService<BatchProcessor>();
        var placed = EventSerializer.Serialize(EventCatalog.OrderPlaced, new OrderPlaced("ORD-1", "customer-1", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m), "test");

        var handled = await processor.ProcessWithRetriesAsync(
            [Record(0, placed.Key, placed.Value), Record(1, placed.Key, placed.Value), Record(2, "ORD-2", "<not an event>")],
            DateTimeOffset.UtcNow,
            CancellationToken.None);

        Assert.True(handled);
        await using var connection = await services.GetRequiredService<ServiceDatabase>().OpenAsync(CancellationToken.None);
        Assert.Equal(["ORD-1"], await connection.QueryAsync<string>("SELECT order_id FROM handled"));
        Assert.Equal([placed.EventId], await connection.QueryAsync<string>("SELECT event_id FROM processed_events"));
        Assert.Equal([Topics.DeadLetters.Name], await connection.QueryAsync<string>("SELECT topic FROM outbox"));
        Assert.Equal((1, 1), (processor.Processed, processor.DeadLettered));
    }

    [Fact]
    public async Task A_batch_handler_is_given_the_batchs_new_events_at_once_in_the_order_read()
    {
        var recorder = new RecordOrders();
        await using var services = Services(new ConsumerRegistration().HandleAll<RecordOrders>(Topics.BookOrders), recorder);
        var processor = services.GetRequiredService<BatchProcessor>();
        var first = Placed("ORD-1");
        var second = Placed("ORD-2");

        var handled = await processor.ProcessWithRetriesAsync(
            [Record(0, first.Key, first.Value), Record(1, "ORD-X", "<not an event>"), Record(2, second.Key, second.Value), Record(3, first.Key, first.Value)],
            DateTimeOffset.UtcNow,
            CancellationToken.None);

        Assert.True(handled);
        Assert.Equal([[first.EventId, second.EventId]], recorder.Calls);
        await using var connection = await services.GetRequiredService<ServiceDatabase>().OpenAsync(CancellationToken.None);
        Assert.Equal(["ORD-1", "ORD-2"], await connection.QueryAsync<string>("SELECT order_id FROM handled ORDER BY order_id"));
        Assert.Equal((2, 1), (processor.Processed, processor.DeadLettered));
    }

    [Fact]
    public async Task When_a_batch_handler_fails_its_events_are_handled_one_at_a_time_and_only_the_failing_one_is_dead_lettered()
    {
        var recorder = new RecordOrders { Refuse = "ORD-POISON" };
        await using var services = Services(new ConsumerRegistration().HandleAll<RecordOrders>(Topics.BookOrders), recorder);
        var processor = services.GetRequiredService<BatchProcessor>();
        var (good, poison, later) = (Placed("ORD-1"), Placed("ORD-POISON"), Placed("ORD-3"));

        var handled = await processor.ProcessWithRetriesAsync(
            [Record(0, good.Key, good.Value), Record(1, poison.Key, poison.Value), Record(2, later.Key, later.Value)],
            DateTimeOffset.UtcNow,
            CancellationToken.None);

        Assert.True(handled);
        Assert.Equal([good.EventId, poison.EventId, later.EventId], recorder.Calls[0]);
        Assert.Contains([good.EventId], recorder.Calls);
        Assert.Contains([later.EventId], recorder.Calls);
        await using var connection = await services.GetRequiredService<ServiceDatabase>().OpenAsync(CancellationToken.None);
        Assert.Equal(["ORD-1", "ORD-3"], await connection.QueryAsync<string>("SELECT order_id FROM handled ORDER BY order_id"));
        var deadLetter = Assert.Single(await connection.QueryAsync<string>("SELECT value FROM outbox WHERE topic = @topic", new { topic = Topics.DeadLetters.Name }));
        Assert.Contains(poison.EventId, deadLetter, StringComparison.Ordinal);
        Assert.Equal((2, 1), (processor.Processed, processor.DeadLettered));
    }

    [Fact]
    public async Task A_failing_handler_is_called_exactly_max_attempts_times_and_undoes_only_its_own_event()
    {
        var handler = new FailingFor("ORD-BAD", "ORD-FLAKY");
        await using var services = Services(new ConsumerRegistration().Handle<OrderPlaced, FailingFor>(), handler: handler);
        var processor = services.GetRequiredService<BatchProcessor>();
        var (good, bad, flaky, later) = (Placed("ORD-1"), Placed("ORD-BAD"), Placed("ORD-FLAKY"), Placed("ORD-4"));

        var handled = await processor.ProcessWithRetriesAsync(
            [Record(0, good.Key, good.Value), Record(1, bad.Key, bad.Value), Record(2, flaky.Key, flaky.Value), Record(3, later.Key, later.Value)],
            DateTimeOffset.UtcNow,
            CancellationToken.None);

        Assert.True(handled);
        var maxAttempts = new MessagingOptions().MaxAttempts;
        Assert.Equal(maxAttempts, handler.Calls["ORD-BAD"]);
        Assert.Equal(2, handler.Calls["ORD-FLAKY"]); // failed once, then handled
        await using var connection = await services.GetRequiredService<ServiceDatabase>().OpenAsync(CancellationToken.None);
        Assert.Equal(["ORD-1", "ORD-4", "ORD-FLAKY"], await connection.QueryAsync<string>("SELECT order_id FROM handled ORDER BY order_id"));
        var letter = JsonSerializer.Deserialize<DeadLetter>(
            Assert.Single(await connection.QueryAsync<string>("SELECT value FROM outbox WHERE topic = @topic", new { topic = Topics.DeadLetters.Name })),
            EventSerializer.Options)!;
        Assert.Equal((bad.EventId, maxAttempts), (letter.EventId, letter.Attempts));
        Assert.Equal((3, 1), (processor.Processed, processor.DeadLettered));
    }

    [Fact]
    public async Task Events_the_service_has_no_handler_for_are_passed_over_unread_and_without_a_transaction()
    {
        await using var services = Services();
        var processor = services.GetRequiredService<BatchProcessor>();
        var database = (SqliteServiceDatabase)services.GetRequiredService<ServiceDatabase>();
        var confirmed = EventSerializer.Serialize(EventCatalog.OrderConfirmed, new OrderConfirmed("ORD-1", "customer-1", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m), "test");
        // Without an id, read in full it would be poison (dead-lettered); unhandled, it is not looked at.
        var broken = confirmed.Value.Replace($"\"id\":\"{confirmed.EventId}\"", "\"id\":\"\"", StringComparison.Ordinal);
        Assert.NotEqual(confirmed.Value, broken);
        var commits = database.Commits;

        var handled = await processor.ProcessWithRetriesAsync([Record(0, confirmed.Key, confirmed.Value), Record(1, confirmed.Key, broken)], DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.True(handled);
        Assert.Equal(commits, database.Commits);
        Assert.Equal((0, 0), (processor.Processed, processor.DeadLettered));

        var placed = Placed("ORD-2");
        Assert.True(await processor.ProcessWithRetriesAsync([Record(2, confirmed.Key, confirmed.Value), Record(3, placed.Key, placed.Value)], DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Equal(commits + 1, database.Commits);
        await using var connection = await database.OpenAsync(CancellationToken.None);
        Assert.Equal([placed.EventId], await connection.QueryAsync<string>("SELECT event_id FROM processed_events"));
        Assert.Equal(["ORD-2"], await connection.QueryAsync<string>("SELECT order_id FROM handled"));
        Assert.Empty(await connection.QueryAsync<string>("SELECT topic FROM outbox"));
    }

    [Fact]
    public void A_consumer_has_typed_handlers_or_batch_handlers_not_both()
    {
        Assert.Throws<InvalidOperationException>(() => new ConsumerRegistration().Handle<OrderPlaced, RecordOrder>().HandleAll<RecordOrders>(Topics.BookOrders));
        Assert.Throws<InvalidOperationException>(() => new ConsumerRegistration().HandleAll<RecordOrders>(Topics.BookOrders).Handle<OrderPlaced, RecordOrder>());
    }

    private static EventRecord Placed(string orderId) =>
        EventSerializer.Serialize(EventCatalog.OrderPlaced, new OrderPlaced(orderId, "customer-1", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m), "test");

    /// <summary>A service database on a SQLite file, with the messaging tables and <paramref name="schema"/>.</summary>
    private static ServiceDatabase SqliteServiceDatabaseAt(string path, string schema) =>
        ServiceDatabase.Open(new MessagingOptions { DatabasePath = path }, schema);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private ServiceProvider Services(ConsumerRegistration? registration = null, RecordOrders? batchHandler = null, FailingFor? handler = null)
    {
        var path = Path.Combine(_directory, "service.db");
        return new ServiceCollection()
            .AddLogging()
            .AddSingleton(new MessagingOptions { ServiceName = "batch-test", DatabasePath = path })
            .AddSingleton(SqliteServiceDatabaseAt(path, "CREATE TABLE IF NOT EXISTS handled (order_id TEXT NOT NULL);"))
            .AddSingleton<OutboxSignal>()
            .AddSingleton<Outbox>()
            .AddSingleton(registration ?? new ConsumerRegistration().Handle<OrderPlaced, RecordOrder>())
            .AddSingleton<RecordOrder>()
            .AddSingleton(batchHandler ?? new RecordOrders())
            .AddSingleton(handler ?? new FailingFor())
            .AddSingleton<Pruner>()
            .AddMetrics()
            .AddSingleton<Bookstore.Messaging.Telemetry.MessagingMetrics>()
            .AddSingleton<BatchProcessor>()
            .BuildServiceProvider();
    }

    private static ConsumeResult<byte[], byte[]> Record(long offset, string key, string value) => new()
    {
        Topic = Topics.BookOrders.Name,
        Partition = 0,
        Offset = offset,
        Message = new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = Encoding.UTF8.GetBytes(value) },
    };

    private sealed class RecordOrder : IEventHandler<OrderPlaced>
    {
        public Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken) =>
            context.Connection.ExecuteAsync("INSERT INTO handled (order_id) VALUES (@OrderId)", new { data.OrderId }, context.Transaction);
    }

    /// <summary>Records each order handled and counts the calls per order; always fails the first
    /// order given, and the second on its first call only.</summary>
    private sealed class FailingFor(string? always = null, string? once = null) : IEventHandler<OrderPlaced>
    {
        public Dictionary<string, int> Calls { get; } = [];

        public async Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken)
        {
            var call = Calls[data.OrderId] = Calls.GetValueOrDefault(data.OrderId) + 1;
            await context.Connection.ExecuteAsync("INSERT INTO handled (order_id) VALUES (@OrderId)", new { data.OrderId }, context.Transaction);
            if (data.OrderId == always || (data.OrderId == once && call == 1))
            {
                throw new InvalidOperationException($"{data.OrderId} fails (call {call})");
            }
        }
    }

    /// <summary>Records each call's event ids; fails a call that holds the order <see cref="Refuse"/>.</summary>
    private sealed class RecordOrders : IEventBatchHandler
    {
        public string? Refuse { get; init; }

        public List<List<string>> Calls { get; } = [];

        public async Task HandleAsync(System.Data.Common.DbTransaction transaction, IReadOnlyList<ConsumedEvent> events, CancellationToken cancellationToken)
        {
            Calls.Add([.. events.Select(e => e.Event.Id)]);
            var orders = events.Select(e => ((OrderPlaced)e.Data).OrderId).ToList();
            await transaction.Connection!.ExecuteAsync("INSERT INTO handled (order_id) VALUES (@orderId)", orders.Select(orderId => new { orderId }), transaction);
            if (Refuse is not null && orders.Contains(Refuse))
            {
                throw new InvalidOperationException($"{Refuse} is refused");
            }
        }
    }
}
