using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;

namespace Bookstore.Orders.Data;

public static class OrderStatus
{
    public const string Pending = "Pending";
    public const string Confirmed = "Confirmed";
    public const string Cancelled = "Cancelled";
}

public sealed record HistoryEntry(DateTimeOffset At, string Step, string? Detail, string Service, string? Topic, int? Partition, long? Offset);

public sealed record Order(
    string Id,
    string CustomerId,
    string Status,
    string? Reason,
    IReadOnlyList<OrderLine> Lines,
    decimal Total,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    IReadOnlyList<HistoryEntry> History);

public sealed record IdempotencyRecord(string OrderId, string RequestHash);

public sealed record CatalogEntry(string Isbn, string Title, decimal Price, int Available);

public sealed record OrderStats(long OrdersPlaced, long OrdersConfirmed, long OrdersCancelled, long OrdersPending, decimal Revenue);

/// <summary>Orders, their history, the idempotency keys of the requests that created them, and
/// the catalog as read from <c>book-catalog-updates</c>.</summary>
public static class OrderStore
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS orders (
            id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            lines TEXT NOT NULL,
            total_cents INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_at);
        CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, created_at);
        CREATE TABLE IF NOT EXISTS order_history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            order_id TEXT NOT NULL,
            at TEXT NOT NULL,
            step TEXT NOT NULL,
            detail TEXT,
            service TEXT NOT NULL,
            topic TEXT,
            partition INTEGER,
            "offset" INTEGER);
        CREATE INDEX IF NOT EXISTS order_history_by_order ON order_history (order_id, seq);
        CREATE INDEX IF NOT EXISTS order_history_by_age ON order_history (at);
        -- Keys were once global (one customer's key could answer with another's order): scoped
        -- per customer since, and the old table, whose keys only mattered for a retry, is gone.
        DROP TABLE IF EXISTS idempotency_keys;
        CREATE TABLE IF NOT EXISTS customer_idempotency_keys (
            customer_id TEXT NOT NULL,
            key TEXT NOT NULL,
            order_id TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            PRIMARY KEY (customer_id, key)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS catalog (
            isbn TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price_cents INTEGER NOT NULL,
            available INTEGER NOT NULL) WITHOUT ROWID;
        """;

    /// <summary>Stores a new order with its first history entry; returns it as stored.</summary>
    public static async Task<Order> InsertAsync(DbTransaction transaction, Order order)
    {
        await transaction.Connection!.ExecuteAsync(
            """
            INSERT INTO orders (id, customer_id, status, reason, lines, total_cents, created_at, updated_at)
            VALUES (@Id, @CustomerId, @Status, NULL, @Lines, @TotalCents, @At, @At)
            """,
            new { order.Id, order.CustomerId, order.Status, Lines = JsonSerializer.Serialize(order.Lines), TotalCents = Money.ToCents(order.Total), At = order.CreatedAt.ToString("O") },
            transaction);
        var placed = new HistoryEntry(order.CreatedAt, "placed", $"{order.Lines.Count} line(s), total {order.Total}", "order-service", null, null, null);
        await AddHistoryAsync(transaction, order.Id, placed.Step, placed.Detail, placed.Service, null);
        return order with { History = [placed] };
    }

    /// <summary>Moves a Pending order to <paramref name="status"/>; null when it was no longer
    /// pending (a late or repeated outcome changes nothing).</summary>
    public static async Task<Order?> DecideAsync(EventContext context, string orderId, string status, string? reason)
    {
        var changed = await context.Connection.ExecuteAsync(
            "UPDATE orders SET status = @status, reason = @reason, updated_at = @at WHERE id = @orderId AND status = 'Pending'",
            new { orderId, status, reason, at = DateTimeOffset.UtcNow.ToString("O") },
            context.Transaction);
        return changed == 0 ? null : await GetAsync(context.Connection, orderId, context.Transaction);
    }

    public static Task AddHistoryAsync(EventContext context, string orderId, string step, string? detail) =>
        AddHistoryAsync(context.Transaction, orderId, step, detail, context.Event.Source, (context.Topic, context.Partition, context.Offset));

    public static Task AddHistoryAsync(DbTransaction transaction, string orderId, string step, string? detail, string service, (string Topic, int Partition, long Offset)? from) =>
        transaction.Connection!.ExecuteAsync(
            """
            INSERT INTO order_history (order_id, at, step, detail, service, topic, partition, "offset")
            VALUES (@orderId, @at, @step, @detail, @service, @topic, @partition, @offset)
            """,
            new { orderId, at = DateTimeOffset.UtcNow.ToString("O"), step, detail, service, topic = from?.Topic, partition = from?.Partition, offset = from?.Offset },
            transaction);

    public static async Task<Order?> GetAsync(DbConnection connection, string orderId, DbTransaction? transaction = null)
    {
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(
            "SELECT id AS Id, customer_id AS CustomerId, status AS Status, reason AS Reason, lines AS Lines, total_cents AS TotalCents, created_at AS CreatedAt, updated_at AS UpdatedAt FROM orders WHERE id = @orderId",
            new { orderId },
            transaction);
        if (row is null)
        {
            return null;
        }

        var history = await connection.QueryAsync<HistoryRow>(
            "SELECT at AS At, step AS Step, detail AS Detail, service AS Service, topic AS Topic, partition AS Partition, \"offset\" AS Offset FROM order_history WHERE order_id = @orderId ORDER BY seq",
            new { orderId },
            transaction);
        return row.ToOrder([.. history.Select(h => h.ToEntry())]);
    }

    public static async Task<List<Order>> ByCustomerAsync(DbConnection connection, string customerId)
    {
        var rows = await connection.QueryAsync<OrderRow>(
            "SELECT id AS Id, customer_id AS CustomerId, status AS Status, reason AS Reason, lines AS Lines, total_cents AS TotalCents, created_at AS CreatedAt, updated_at AS UpdatedAt FROM orders WHERE customer_id = @customerId ORDER BY created_at DESC LIMIT 100",
            new { customerId });
        return [.. rows.Select(r => r.ToOrder([]))];
    }

    public static async Task<OrderStats> StatsAsync(DbConnection connection)
    {
        var row = await connection.QuerySingleAsync<(long Placed, long Confirmed, long Cancelled, long Pending, long RevenueCents)>(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE status = 'Confirmed'),
                   count(*) FILTER (WHERE status = 'Cancelled'),
                   count(*) FILTER (WHERE status = 'Pending'),
                   CAST(coalesce(sum(total_cents) FILTER (WHERE status = 'Confirmed'), 0) AS BIGINT)
            FROM orders
            """);
        return new OrderStats(row.Placed, row.Confirmed, row.Cancelled, row.Pending, Money.FromCents(row.RevenueCents));
    }

    /// <summary>Cancels the orders pending since before <paramref name="before"/>; returns them.
    /// <c>Pending</c> is checked again outside the subquery: on PostgreSQL an order decided by a
    /// concurrent transaction is re-checked after its lock, and stays decided.</summary>
    public static async Task<List<(string Id, string CustomerId)>> ExpireAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        [.. await transaction.Connection!.QueryAsync<(string, string)>(
            """
            UPDATE orders SET status = 'Cancelled', reason = 'timeout', updated_at = @now
            WHERE id IN (SELECT id FROM orders WHERE status = 'Pending' AND created_at < @before ORDER BY created_at LIMIT @limit)
              AND status = 'Pending'
            RETURNING id, customer_id
            """,
            new { before = before.ToString("O"), now = DateTimeOffset.UtcNow.ToString("O"), limit },
            transaction)];

    public static Task<IdempotencyRecord?> IdempotencyKeyAsync(DbTransaction transaction, string customerId, string key) =>
        transaction.Connection!.QuerySingleOrDefaultAsync<IdempotencyRecord?>(
            "SELECT order_id AS OrderId, request_hash AS RequestHash FROM customer_idempotency_keys WHERE customer_id = @customerId AND key = @key",
            new { customerId, key },
            transaction);

    public static Task AddIdempotencyKeyAsync(DbTransaction transaction, string customerId, string key, string orderId, string requestHash) =>
        transaction.Connection!.ExecuteAsync(
            "INSERT INTO customer_idempotency_keys (customer_id, key, order_id, request_hash) VALUES (@customerId, @key, @orderId, @requestHash)",
            new { customerId, key, orderId, requestHash },
            transaction);

    public static async Task<Dictionary<string, CatalogEntry>> CatalogAsync(DbConnection connection, IEnumerable<string> isbns, DbTransaction? transaction = null) =>
        (await connection.QueryAsync<(string Isbn, string Title, long PriceCents, long Available)>(
            $"SELECT isbn, title, price_cents, available FROM catalog WHERE isbn IN (SELECT value FROM {SqlDialect.Of(connection).Values("@isbns")})",
            new { isbns = SqlDialect.Of(connection).List(isbns.Distinct()) },
            transaction))
        .ToDictionary(r => r.Isbn, r => new CatalogEntry(r.Isbn, r.Title, Money.FromCents(r.PriceCents), (int)r.Available));

    public static Task UpsertCatalogAsync(EventContext context, string isbn, string title, decimal price, int available) =>
        context.Connection.ExecuteAsync(
            """
            INSERT INTO catalog (isbn, title, price_cents, available) VALUES (@isbn, @title, @priceCents, @available)
            ON CONFLICT (isbn) DO UPDATE SET title = excluded.title, price_cents = excluded.price_cents, available = excluded.available
            """,
            new { isbn, title, priceCents = Money.ToCents(price), available },
            context.Transaction);

    private sealed record OrderRow(string Id, string CustomerId, string Status, string? Reason, string Lines, long TotalCents, string CreatedAt, string UpdatedAt)
    {
        public Order ToOrder(IReadOnlyList<HistoryEntry> history) => new(
            Id, CustomerId, Status, Reason, JsonSerializer.Deserialize<List<OrderLine>>(Lines)!, Money.FromCents(TotalCents),
            DateTimeOffset.Parse(CreatedAt, System.Globalization.CultureInfo.InvariantCulture),
            DateTimeOffset.Parse(UpdatedAt, System.Globalization.CultureInfo.InvariantCulture),
            history);
    }

    private sealed record HistoryRow(string At, string Step, string? Detail, string Service, string? Topic, long? Partition, long? Offset)
    {
        public HistoryEntry ToEntry() => new(DateTimeOffset.Parse(At, System.Globalization.CultureInfo.InvariantCulture), Step, Detail, Service, Topic, (int?)Partition, Offset);
    }
}
