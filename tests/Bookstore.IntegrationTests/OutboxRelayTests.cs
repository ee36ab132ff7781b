using System.Net.Http.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Outbox;
using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.AspNetCore.Builder;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using OutboxWriter = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.IntegrationTests;

/// <summary>The outbox relay under faults, on the real cluster: a row no broker accepts is parked
/// and the rest flow on in order; a relay stalled past its lease neither loses it to a standby
/// while it can renew it nor keeps publishing once it cannot.</summary>
public abstract class OutboxRelayTests(KafkaClusterFixture fixture, StorageBackend backend) : IDisposable
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-relay-");

    // Relays started with the same name share a database, as instances of one service do.
    private readonly Dictionary<string, TestDatabase> _databases = [];

    /// <summary>Tests of both backends share the cluster: their namespaces differ.</summary>
    private string Purpose => backend == StorageBackend.Sqlite ? string.Empty : "pg-";

    private async Task<TestDatabase> DatabaseAsync(string name)
    {
        if (!_databases.TryGetValue(name, out var database))
        {
            _databases[name] = database = await TestDatabase.CreateAsync(backend, _data.FullName, Path.GetFileNameWithoutExtension(name));
        }

        return database;
    }

    public void Dispose()
    {
        _data.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    [Fact]
    public async Task A_row_too_large_to_publish_is_parked_and_later_rows_of_its_key_and_others_are_published_in_order()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "relay-parking", Topics.BookOrders, Topics.DeadLetters);
        await using var app = await StartRelayAsync(ns, "relay-parking.db");
        var first = Record("ORD-K1", 1);
        var huge = Record("ORD-K2", 1) with { Value = new string('x', 1_200_000) };
        var afterHuge = Record("ORD-K2", 2);
        var otherKey = Record("ORD-K3", 1);
        var last = Record("ORD-K1", 2);

        await CommitAsync(app, [first, huge, afterHuge, otherKey, last]);

        var published = await ReadWhenCountAsync(ns + Topics.BookOrders.Name, 4);
        Assert.Equal(
            new[] { first.EventId, last.EventId, afterHuge.EventId, otherKey.EventId }.Order(),
            published.Select(r => EventSerializer.Parse(r.Message.Value).Id).Order());
        // Per key, in the order written.
        Assert.Equal([first.EventId, last.EventId], published.Where(r => r.Message.Key == "ORD-K1").OrderBy(r => r.Offset.Value).Select(r => EventSerializer.Parse(r.Message.Value).Id));
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(app, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");

        // The operator sees the parked row and why; it was never published.
        using var http = new HttpClient { BaseAddress = new Uri(Address(app)) };
        var status = await http.GetFromJsonAsync<OutboxStatus>("/outbox", EventSerializer.Options);
        Assert.Equal(0, status!.Pending);
        Assert.Equal(1, status.Parked);
        var parked = Assert.Single(status.RecentlyParked);
        Assert.Equal(huge.EventId, parked.EventId);
        Assert.Equal("ORD-K2", parked.Key);
        Assert.Equal(1_200_000, parked.ValueLength);
        Assert.Contains("too large", parked.Error, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(1, app.Services.GetRequiredService<OutboxRelay>().Parked);

        // And whoever watches the dead-letter topic is told.
        var notices = TestClients.ReadToEnd(fixture.Connection, ns + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions);
        var notice = System.Text.Json.JsonSerializer.Deserialize<ParkedNotice>(Assert.Single(notices).Message.Value, EventSerializer.Options)!;
        Assert.Equal((ParkedNotice.KindName, huge.EventId, "ORD-K2", 1_200_000L), (notice.Kind, notice.EventId, notice.Key, notice.ValueBytes));
    }

    [Fact]
    public async Task A_relay_waiting_past_its_lease_for_deliveries_renews_it_so_a_standby_never_publishes_the_same_rows()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "relay-lease-kept", Topics.BookOrders);
        await using var holder = await StartRelayAsync(ns, "relay-lease-kept.db");
        var holderRelay = holder.Services.GetRequiredService<OutboxRelay>();
        Assert.True(await Poll.UntilAsync(() => holderRelay.IsActive, TestClients.Deadline), "the first relay takes the lease");
        await using var standby = await StartRelayAsync(ns, "relay-lease-kept.db");
        var standbyRelay = standby.Services.GetRequiredService<OutboxRelay>();

        // The holder's delivery reports take three leases to arrive (a slow broker, say).
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        holderRelay.AwaitingDeliveries = async ct =>
        {
            holderRelay.AwaitingDeliveries = null;
            stalled.TrySetResult();
            await Task.Delay(Lease * 3, ct);
        };
        var rows = Enumerable.Range(0, 50).Select(i => Record($"ORD-{i:D3}", 1)).ToList();
        await CommitAsync(holder, rows);
        await stalled.Task.WaitAsync(TestClients.Deadline);

        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(holder, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");
        var published = TestClients.ReadToEnd(fixture.Connection, ns + Topics.BookOrders.Name, Topics.BookOrders.Partitions);
        Assert.Equal(rows.Select(r => r.EventId).Order(), published.Select(r => EventSerializer.Parse(r.Message.Value).Id).Order());
        Assert.Equal(0, standbyRelay.Published);
        // The row, not the holder's own view: that one lapses for a moment whenever a renewal is
        // slow on a loaded machine, and the holder takes the row back as its owner.
        Assert.Equal(holderRelay.LeaseOwner, (await QueryAsync<string>(holder, "SELECT owner FROM relay_lease")).Single());
    }

    [Fact]
    public async Task A_relay_that_loses_its_lease_while_records_wait_in_its_client_drops_them_so_only_the_new_holder_publishes()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "relay-lease-lost", Topics.BookOrders);
        // The holder's client keeps records for seconds before sending (a slow path to the broker).
        var linger = TimeSpan.FromSeconds(8);
        await using var holder = await StartRelayAsync(ns, "relay-lease-lost.db", ("Messaging:Producer:linger.ms", ((int)linger.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var holderRelay = holder.Services.GetRequiredService<OutboxRelay>();
        Assert.True(await Poll.UntilAsync(() => holderRelay.IsActive, TestClients.Deadline), "the first relay takes the lease");
        await using var standby = await StartRelayAsync(ns, "relay-lease-lost.db");
        var standbyRelay = standby.Services.GetRequiredService<OutboxRelay>();

        var handedOver = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        holderRelay.AwaitingDeliveries = _ =>
        {
            holderRelay.AwaitingDeliveries = null;
            handedOver.TrySetResult();
            return Task.CompletedTask;
        };
        var rows = Enumerable.Range(0, 20).Select(i => Record($"ORD-{i:D3}", 1)).ToList();
        await CommitAsync(holder, rows);
        await handedOver.Task.WaitAsync(TestClients.Deadline);
        var sendBy = DateTimeOffset.UtcNow + linger;

        // The standby holds the lease now (as after a stall that kept the holder from renewing in time).
        await ExecuteAsync(holder, "UPDATE relay_lease SET owner = @owner, expires_at = @until", new { owner = standbyRelay.LeaseOwner, until = DateTimeOffset.UtcNow.Add(Lease).ToUnixTimeMilliseconds() });
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(holder, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the new holder publishes the rows");
        Assert.Equal(rows.Count, standbyRelay.Published);
        Assert.True(await Poll.UntilAsync(() => !holderRelay.IsActive, TestClients.Deadline), "the old holder notices at its next renewal");

        // Until the holder's client would have sent what it kept, no second copy appears.
        var topic = ns + Topics.BookOrders.Name;
        bool SecondCopies() => TestClients.ReadToEnd(fixture.Connection, topic, Topics.BookOrders.Partitions).Count > rows.Count;
        Assert.False(await Poll.UntilAsync(SecondCopies, sendBy - DateTimeOffset.UtcNow + TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(500)), "records published by two relays");
        var published = TestClients.ReadToEnd(fixture.Connection, topic, Topics.BookOrders.Partitions);
        Assert.Equal(rows.Select(r => r.EventId).Order(), published.Select(r => EventSerializer.Parse(r.Message.Value).Id).Order());
    }

    [Fact]
    public async Task Two_relays_starting_together_on_one_database_publish_every_row_once_and_never_both_at_once()
    {
        var ns = await fixture.CreateNamespaceAsync(Purpose + "relay-race", Topics.BookOrders);
        await DatabaseAsync("relay-race.db");
        var started = await Task.WhenAll(StartRelayAsync(ns, "relay-race.db"), StartRelayAsync(ns, "relay-race.db"));
        await using var first = started[0];
        await using var second = started[1];
        var relays = started.Select(app => app.Services.GetRequiredService<OutboxRelay>()).ToList();

        // Watch the two for as long as they publish: at no moment may both think they hold the lease.
        using var watching = new CancellationTokenSource();
        var bothActive = 0;
        var watch = Task.Run(async () =>
        {
            while (!watching.IsCancellationRequested)
            {
                if (relays.All(r => r.IsActive))
                {
                    Interlocked.Increment(ref bothActive);
                }

                await Task.Delay(1, CancellationToken.None);
            }
        });

        // Both services commit rows at once, in many small transactions, as instances under load do.
        var rows = Enumerable.Range(0, 400).Select(i => Record($"ORD-{i:D3}", 1)).ToList();
        await Task.WhenAll(rows.Chunk(10).Select((chunk, i) => CommitAsync(started[i % 2], chunk)));
        Assert.True(await Poll.UntilAsync(async _ => (await QueryAsync<long>(first, "SELECT count(*) FROM outbox")).Single() == 0, TestClients.Deadline), "the outbox drains");
        await watching.CancelAsync();
        await watch;

        var published = TestClients.ReadToEnd(fixture.Connection, ns + Topics.BookOrders.Name, Topics.BookOrders.Partitions);
        Assert.Equal(rows.Select(r => r.EventId).Order(), published.Select(r => EventSerializer.Parse(r.Message.Value).Id).Order());
        Assert.Equal(rows.Count, relays.Sum(r => r.Published));
        Assert.Equal(0, bothActive);
        Assert.Single(relays, r => r.IsActive);
    }

    private static EventRecord Record(string orderId, int version) =>
        EventSerializer.Serialize(EventCatalog.OrderPlaced, new OrderPlaced(orderId, $"customer-{version}", [new OrderLine("978-0-13-468599-1", version, 10m)], 10m * version), "relay-test");

    private async Task<WebApplication> StartRelayAsync(string ns, string database, params (string Key, string Value)[] settings) =>
        await TestService.StartAsync(
            fixture,
            "relay-test",
            ns,
            await DatabaseAsync(database),
            string.Empty,
            consumers: null,
            settings: settings.Append(("Messaging:OutboxLeaseDuration", Lease.ToString())).ToDictionary(s => s.Item1, s => (string?)s.Item2));

    private static async Task CommitAsync(WebApplication app, IEnumerable<EventRecord> records)
    {
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        await using var transaction = (DbTransaction)await connection.BeginTransactionAsync();
        foreach (var record in records)
        {
            await OutboxWriter.AddRecordAsync(transaction, record);
        }

        await transaction.CommitAsync();
        app.Services.GetRequiredService<OutboxWriter>().Committed();
    }

    private static async Task<List<T>> QueryAsync<T>(WebApplication app, string sql)
    {
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        return [.. await connection.QueryAsync<T>(sql)];
    }

    private static async Task ExecuteAsync(WebApplication app, string sql, object parameters)
    {
        await using var connection = await app.Services.GetRequiredService<ServiceDatabase>().OpenAsync();
        await connection.ExecuteAsync(sql, parameters);
    }

    private static string Address(WebApplication app) => app.Urls.First();

    private async Task<List<Confluent.Kafka.ConsumeResult<string, string>>> ReadWhenCountAsync(string topic, int count)
    {
        List<Confluent.Kafka.ConsumeResult<string, string>> read = [];
        var reached = await Poll.UntilAsync(
            () =>
            {
                read = TestClients.ReadToEnd(fixture.Connection, topic, Topics.BookOrders.Partitions);
                return read.Count >= count;
            },
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(reached, $"{count} records on {topic}; saw {read.Count}");
        return read;
    }
}

[Collection(KafkaCollection.Name)]
public sealed class OutboxRelayTestsOnSqlite(KafkaClusterFixture fixture) : OutboxRelayTests(fixture, StorageBackend.Sqlite);

[Collection(KafkaCollection.Name)]
public sealed class OutboxRelayTestsOnPostgres(KafkaClusterFixture fixture) : OutboxRelayTests(fixture, StorageBackend.Postgres);
