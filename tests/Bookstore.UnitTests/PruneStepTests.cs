using System.Text.Json;
using Bookstore.Analytics.Data;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Work;
using Bookstore.Notifications.Data;
using Bookstore.Orders.Data;
using Dapper;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bookstore.UnitTests;

/// <summary>Each service's prune step on a real SQLite file of its own schema: old records go, young
/// ones stay, a pending order keeps its history, and Analytics' figures survive the fold.</summary>
public sealed class PruneStepTests : IDisposable
{
    private static readonly TimeSpan Horizon = TimeSpan.FromHours(1);
    private static readonly DateTimeOffset Old = DateTimeOffset.UtcNow - TimeSpan.FromHours(3);
    private static readonly DateTimeOffset Young = DateTimeOffset.UtcNow - TimeSpan.FromMinutes(5);
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-prune-");

    /// <summary>A service database on a SQLite file, with the messaging tables and <paramref name="schema"/>.</summary>
    private static ServiceDatabase SqliteServiceDatabaseAt(string path, string schema) =>
        ServiceDatabase.Open(new MessagingOptions { DatabasePath = path }, schema);

    public void Dispose() => _data.Delete(recursive: true);

    [Fact]
    public async Task Analytics_figures_are_the_same_after_old_facts_are_folded_into_the_roll_ups()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "analytics.db"), AnalyticsStore.Schema);
        await database.WriteAsync(async t =>
        {
            await RecordAsync(t, EventCatalog.BookPriceChanged, new BookPriceChanged("978-0", "A book", 10m, 5), Old, "evt-catalog-0");
            for (var i = 0; i < 25; i++)
            {
                // Orders of the past, of which the last five are still under way (a young fact).
                var at = Old.AddMinutes(i);
                var id = $"ORD-{i:D3}";
                OrderLine[] lines = [new($"978-{i % 3}", 1 + (i % 2), 10m + i)];
                var total = lines.Sum(l => l.Amount);
                await RecordAsync(t, EventCatalog.OrderPlaced, new OrderPlaced(id, "c", lines, total), at);
                await RecordAsync(t, EventCatalog.StockReserved, new StockReserved(id, "c", lines, total), at);
                if (i % 4 == 0)
                {
                    await RecordAsync(t, EventCatalog.OrderCancelled, new OrderCancelled(id, "c", "payment"), i >= 20 ? Young : at);
                    continue;
                }

                await RecordAsync(t, EventCatalog.PaymentSucceeded, new PaymentSucceeded(id, "P", total), at);
                // A confirmation published twice (two event ids) counts the order once.
                await RecordAsync(t, EventCatalog.OrderConfirmed, new OrderConfirmed(id, "c", lines, total), i >= 20 ? Young : at);
                await RecordAsync(t, EventCatalog.OrderConfirmed, new OrderConfirmed(id, "c", lines, total), at);
            }

            await RecordAsync(t, EventCatalog.OrderPlaced, new OrderPlaced("ORD-NEW", "c", [new("978-9", 1, 1m)], 1m), Young);
        });
        var before = await FiguresAsync(database);
        var factsBefore = await CountAsync(database, "facts");

        var pruner = PrunerFor(database, new AnalyticsFactsPruneStep(), chunk: 4);
        var folded = await pruner.PruneAsync(pruner.Steps.Single(s => s.Name == "AnalyticsFacts"), CancellationToken.None);

        Assert.Equal(20 + 1, folded); // 20 whole orders and the catalog's fact
        Assert.Equal(before, await FiguresAsync(database));
        var factsAfter = await CountAsync(database, "facts");
        Assert.True(factsAfter < factsBefore / 3, $"{factsAfter} facts left of {factsBefore}");
        // An order still under way keeps all its facts, the old ones too.
        Assert.Equal(5, (await QueryAsync<long>(database, "SELECT count(*) FROM facts WHERE order_id = 'ORD-021'")).Single());

        // The catalog's records are never deleted by Kafka: read again, the one folded is not counted twice.
        Assert.False(await database.WriteAsync(t => RecordAsync(t, EventCatalog.BookPriceChanged, new BookPriceChanged("978-0", "A book", 10m, 5), Old, "evt-catalog-0")));
        Assert.Equal(before, await FiguresAsync(database));
    }

    [Fact]
    public async Task Order_history_goes_for_old_decided_orders_only_and_idempotency_keys_after_their_retry_window()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "orders.db"), OrderStore.Schema);
        await database.WriteAsync(async t =>
        {
            foreach (var (id, at, status) in new[] { ("ORD-OLD-DONE", Old, "Confirmed"), ("ORD-OLD-PENDING", Old, "Pending"), ("ORD-YOUNG-DONE", Young, "Cancelled") })
            {
                await OrderStore.InsertAsync(t, new Order(id, "c", "Pending", null, [new("978-0", 1, 1m)], 1m, at, at, []));
                await OrderStore.AddHistoryAsync(t, id, "reserved", null, "inventory-service", ("inventory-events", 0, 1));
                await t.Connection!.ExecuteAsync("UPDATE orders SET status = @status, updated_at = @at WHERE id = @id", new { id, status, at = at.ToString("O") }, t);
                // Its history was written then, as the order's own was.
                await t.Connection!.ExecuteAsync("UPDATE order_history SET at = @at WHERE order_id = @id", new { id, at = at.ToString("O") }, t);
                await OrderStore.AddIdempotencyKeyAsync(t, "c", $"key-{id}", id, "hash");
            }
        });

        var pruner = PrunerFor(database, [new OrderHistoryPruneStep(), new IdempotencyKeysPruneStep()], chunk: 1, idempotencyKeys: Horizon);
        await pruner.PruneAsync(CancellationToken.None);

        Assert.Equal(
            ["ORD-OLD-PENDING", "ORD-OLD-PENDING", "ORD-YOUNG-DONE", "ORD-YOUNG-DONE"],
            await QueryAsync<string>(database, "SELECT order_id FROM order_history ORDER BY order_id"));
        Assert.Equal(3, await CountAsync(database, "orders"));
        Assert.Equal(["key-ORD-YOUNG-DONE"], await QueryAsync<string>(database, "SELECT key FROM customer_idempotency_keys"));
    }

    [Fact]
    public async Task The_analytics_fold_looks_for_orders_among_the_old_facts_only_not_through_every_fact()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "analytics-plan.db"), AnalyticsStore.Schema);

        var plan = await PlanAsync(
            database,
            "CREATE TEMP TABLE IF NOT EXISTS folding (event_id TEXT PRIMARY KEY, order_id TEXT) WITHOUT ROWID",
            AnalyticsStore.FoldableOrders(SqliteDialect.Instance),
            new { horizon = Old.ToString("O"), limit = 10 });

        // The fold runs in the write lock once an interval: a range of the age index, each candidate
        // checked by its order; a search on order_id > NULL is every fact of the horizon.
        Assert.Contains(plan, d => d.Contains("facts_by_age (at<?)", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, d => d.Contains("(order_id>?)", StringComparison.Ordinal) || d.StartsWith("SCAN", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Order_history_is_pruned_from_its_old_lines_not_through_every_line()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "orders-plan.db"), OrderStore.Schema);

        var plan = await PlanAsync(database, null, OrderHistoryPruneStep.Sql(SqliteDialect.Instance), new { before = Old.ToString("O"), limit = 10 });

        Assert.Contains(plan, d => d.Contains("order_history_by_age (at<?)", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, d => d.StartsWith("SCAN", StringComparison.Ordinal));
    }

    [Fact]
    public void Idempotency_keys_are_kept_a_day_unless_configured()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "keys.db"), OrderStore.Schema);
        var pruner = new Pruner(database, new ConsumerRegistration(), new MessagingOptions(), [new IdempotencyKeysPruneStep(), new OrderHistoryPruneStep()], NullLogger<Pruner>.Instance);

        Assert.Equal(TimeSpan.FromHours(24), pruner.HorizonOf(pruner.Steps.Single(s => s.Name == "IdempotencyKeys")));
        Assert.Equal(pruner.SafeHorizonOfThisService, pruner.HorizonOf(pruner.Steps.Single(s => s.Name == "OrderHistory")));
    }

    [Fact]
    public async Task Notifications_go_once_old_and_sent_and_one_still_to_send_stays()
    {
        using var database = SqliteServiceDatabaseAt(Path.Combine(_data.FullName, "notifications.db"), NotificationStore.Schema + PendingWork.Schema);
        await database.WriteAsync(async t =>
        {
            foreach (var (id, at) in new[] { ("NTF-OLD-SENT", Old), ("NTF-OLD-UNSENT", Old), ("NTF-YOUNG", Young) })
            {
                await NotificationStore.TryAddAsync(t, new Notification(id, "c", $"ORD-{id}", "received", "s", "b", "recorded", at));
            }

            await t.Connection!.ExecuteAsync("INSERT INTO pending_work (id, kind, key, payload, next_attempt_at, created_at) VALUES ('email:NTF-OLD-UNSENT', 'email', 'NTF-OLD-UNSENT', '{}', 0, 0)", transaction: t);
        });

        var pruner = PrunerFor(database, new NotificationsPruneStep(), chunk: 1);
        await pruner.PruneAsync(CancellationToken.None);

        Assert.Equal(["NTF-OLD-UNSENT", "NTF-YOUNG"], await QueryAsync<string>(database, "SELECT id FROM notifications ORDER BY id"));
    }

    private static Pruner PrunerFor(ServiceDatabase database, IPruneStep step, int chunk) => PrunerFor(database, [step], chunk);

    private static Pruner PrunerFor(ServiceDatabase database, IPruneStep[] steps, int chunk, TimeSpan? idempotencyKeys = null)
    {
        var options = new MessagingOptions { PruneChunkSize = chunk };
        foreach (var step in steps)
        {
            options.Retention[step.Name] = step.Name == "IdempotencyKeys" ? idempotencyKeys ?? Horizon : Horizon;
        }

        return new Pruner(database, new ConsumerRegistration(), options, steps, NullLogger<Pruner>.Instance);
    }

    private static Task<bool> RecordAsync<T>(System.Data.Common.DbTransaction t, EventDefinition<T> definition, T data, DateTimeOffset at, string? eventId = null)
        where T : class =>
        AnalyticsStore.RecordAsync(t, eventId ?? $"evt-{Guid.NewGuid()}", definition.Topic.Name, definition, data, at);

    private static async Task<string> FiguresAsync(ServiceDatabase database)
    {
        await using var connection = await database.OpenAsync();
        return JsonSerializer.Serialize(new { Summary = await AnalyticsStore.SummaryAsync(connection), Funnel = await AnalyticsStore.FunnelAsync(connection) });
    }

    private static async Task<List<string>> PlanAsync(ServiceDatabase database, string? setup, string sql, object parameters)
    {
        await using var connection = await database.OpenAsync();
        if (setup is not null)
        {
            await connection.ExecuteAsync(setup);
        }

        var rows = await connection.QueryAsync<(long Id, long Parent, long NotUsed, string Detail)>("EXPLAIN QUERY PLAN " + sql, parameters);
        return [.. rows.Select(r => r.Detail)];
    }

    private static async Task<long> CountAsync(ServiceDatabase database, string table) =>
        (await QueryAsync<long>(database, $"SELECT count(*) FROM {table}")).Single();

    private static async Task<List<T>> QueryAsync<T>(ServiceDatabase database, string sql)
    {
        await using var connection = await database.OpenAsync();
        return [.. await connection.QueryAsync<T>(sql)];
    }
}
