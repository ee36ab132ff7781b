using System.Text;
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

    /// <summary>A service database on a SQLite file, with the messaging tables and <paramref name="schema"/>.</summary>
    private static ServiceDatabase SqliteServiceDatabaseAt(string path, string schema) =>
        ServiceDatabase.Open(new MessagingOptions { DatabasePath = path }, schema);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private ServiceProvider Services()
    {
        var path = Path.Combine(_directory, "service.db");
        return new ServiceCollection()
            .AddLogging()
            .AddSingleton(new MessagingOptions { ServiceName = "batch-test", DatabasePath = path })
            .AddSingleton(SqliteServiceDatabaseAt(path, "CREATE TABLE IF NOT EXISTS handled (order_id TEXT NOT NULL);"))
            .AddSingleton<OutboxSignal>()
            .AddSingleton<Outbox>()
            .AddSingleton(new ConsumerRegistration().Handle<OrderPlaced, RecordOrder>())
            .AddSingleton<RecordOrder>()
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
}
