using System.Collections.Concurrent;
using System.Diagnostics;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Bookstore.IntegrationTests;

/// <summary>The fetch-stall check on the real cluster: a consumer kept far behind a backlog by a
/// slow handler, its position frozen for several check intervals at a time, is busy, not stalled,
/// and is never sought (the old position-based rule sought it at every check).</summary>
[Collection(KafkaCollection.Name)]
public sealed class FetchStallTests(KafkaClusterFixture fixture) : IDisposable
{
    private const string Schema = "CREATE TABLE IF NOT EXISTS handled (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL);";
    private const int Warmup = 60;
    private const int Backlog = 2_000;
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PerEvent = TimeSpan.FromMilliseconds(10);
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-fetch-stall-");

    public void Dispose() => _data.Delete(recursive: true);

    [Fact]
    public async Task A_slow_consumer_far_behind_a_backlog_is_never_restarted_and_handles_every_event_once()
    {
        var ns = await fixture.CreateNamespaceAsync("fetch-stall-busy", Topics.BookOrders, Topics.DeadLetters);
        await using var app = await TestService.StartAsync(
            fixture,
            "fetch-stall-test",
            ns,
            new TestDatabase(StorageBackend.Sqlite, Path.Combine(_data.FullName, "fetch-stall-test.db")),
            Schema,
            consumers => consumers.Handle<OrderPlaced, SlowHandler>(),
            builder => builder.Services.AddSingleton<SlowHandler>(),
            new Dictionary<string, string?> { ["Messaging:FetchStallCheckInterval"] = CheckInterval.ToString() });
        var host = app.Services.GetRequiredService<ConsumerHost>();
        var handler = app.Services.GetRequiredService<SlowHandler>();

        // First a few events on every partition, so the consumer has a position on each of them.
        await ProduceAsync(ns, Warmup, "WARM");
        Assert.True(await Poll.UntilAsync(async _ => await CountAsync(app, "SELECT count(*) FROM handled") >= Warmup, TestClients.Deadline), "the warm-up was handled");

        // Then a backlog, all of it prefetched at once: a batch of 500 takes ≥ 5 s, and a partition
        // whose messages queue behind the others' keeps its position for several check intervals.
        var clock = Stopwatch.StartNew();
        await ProduceAsync(ns, Backlog, "ORD");
        var reached = await Poll.UntilAsync(async _ => await CountAsync(app, "SELECT count(*) FROM handled") >= Warmup + Backlog, TimeSpan.FromSeconds(120));
        clock.Stop();

        Assert.True(reached, $"{Warmup + Backlog} events handled; {await CountAsync(app, "SELECT count(*) FROM handled")} were");
        Assert.True(clock.Elapsed > 5 * CheckInterval, $"the consumer was behind for {clock.Elapsed}, several check intervals");
        Assert.True(host.FetchRestarts == 0, $"a busy consumer is never fetched afresh; it was {host.FetchRestarts} time(s)");
        Assert.True(host.FetchStatisticsSamples >= 10, $"the check read librdkafka's statistics ({host.FetchStatisticsSamples} samples)");
        Assert.Equal(Warmup + Backlog, await CountAsync(app, "SELECT count(DISTINCT event_id) FROM handled"));
        Assert.Equal(Warmup + Backlog, await CountAsync(app, "SELECT count(*) FROM handled"));
        Assert.Equal(Warmup + Backlog, handler.Calls.Count);
        Assert.All(handler.Calls.Values, calls => Assert.Equal(1, calls));
    }

    private async Task ProduceAsync(string ns, int count, string prefix) =>
        await TestClients.ProduceAllAsync(
            fixture.Connection,
            ns + Topics.BookOrders.Name,
            Enumerable.Range(0, count)
                .Select(i => EventSerializer.Serialize(EventCatalog.OrderPlaced, new OrderPlaced($"{prefix}-{i:D5}", "customer-1", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m), "test"))
                .Select(e => (e.Key, e.Value)));

    private static async Task<long> CountAsync(WebApplication app, string sql)
    {
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>(sql);
    }

    private sealed class SlowHandler : IEventHandler<OrderPlaced>
    {
        public ConcurrentDictionary<string, int> Calls { get; } = new();

        public async Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken)
        {
            Calls.AddOrUpdate(context.Event.Id, 1, (_, n) => n + 1);
            await Task.Delay(PerEvent, cancellationToken);
            await context.Connection.ExecuteAsync("INSERT INTO handled (event_id) VALUES (@Id)", new { context.Event.Id }, context.Transaction);
        }
    }
}
