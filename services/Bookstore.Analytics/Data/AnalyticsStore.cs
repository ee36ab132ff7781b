using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Bookstore.Analytics.Data;

public sealed record BookSales(string Isbn, long Quantity, decimal Revenue);

public sealed record TopicCount(string Topic, long Events);

/// <summary>How many orders reached each step of the saga.</summary>
public sealed record Funnel(long Placed, long Reserved, long Paid, long Confirmed, long Cancelled);

public sealed record Book(string Isbn, string Title, decimal Price, int Available);

public sealed record Summary(
    long OrdersPlaced,
    long OrdersConfirmed,
    long OrdersCancelled,
    decimal Revenue,
    IReadOnlyList<BookSales> TopBooks,
    IReadOnlyList<TopicCount> EventsByTopic);

/// <summary>Analytics keeps one fact per event (keyed by event id) and derives every figure from
/// the facts: recording is idempotent, so a re-delivery or a replay can never count twice.</summary>
public static class AnalyticsStore
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS facts (
            event_id TEXT PRIMARY KEY,
            topic TEXT NOT NULL,
            type TEXT NOT NULL,
            order_id TEXT,
            amount_cents INTEGER,
            at TEXT NOT NULL) WITHOUT ROWID;
        DROP INDEX IF EXISTS facts_by_type;
        CREATE INDEX IF NOT EXISTS facts_by_type_and_order ON facts (type, order_id);
        CREATE TABLE IF NOT EXISTS sold_lines (
            event_id TEXT NOT NULL,
            isbn TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            amount_cents INTEGER NOT NULL,
            PRIMARY KEY (event_id, isbn)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS books (
            isbn TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price_cents INTEGER NOT NULL,
            available INTEGER NOT NULL) WITHOUT ROWID;
        """;

    public static async Task RecordAsync(SqliteTransaction transaction, string eventId, string topic, EventDefinition definition, object data, DateTimeOffset at)
    {
        var (orderId, amount) = data switch
        {
            OrderPlaced e => (e.OrderId, (decimal?)e.Total),
            OrderConfirmed e => (e.OrderId, e.Total),
            OrderCancelled e => (e.OrderId, null),
            PaymentSucceeded e => (e.OrderId, e.Amount),
            PaymentFailed e => (e.OrderId, e.Amount),
            StockReserved e => (e.OrderId, e.Total),
            StockRejected e => (e.OrderId, null),
            StockReleased e => (e.OrderId, null),
            NotificationSent e => (e.OrderId, null),
            _ => ((string?)null, (decimal?)null),
        };
        var inserted = await transaction.Connection!.ExecuteAsync(
            "INSERT OR IGNORE INTO facts (event_id, topic, type, order_id, amount_cents, at) VALUES (@eventId, @topic, @type, @orderId, @cents, @at)",
            new { eventId, topic, type = definition.TypeName, orderId, cents = amount is { } a ? Money.ToCents(a) : (long?)null, at = at.ToString("O") },
            transaction);
        if (inserted == 1 && data is BookPriceChanged or BookAvailabilityChanged)
        {
            // Both carry the book's whole state, and a book's events stay in order on its partition.
            var (isbn, title, price, available) = data switch
            {
                BookPriceChanged e => (e.Isbn, e.Title, e.Price, e.Available),
                BookAvailabilityChanged e => (e.Isbn, e.Title, e.Price, e.Available),
                _ => throw new InvalidOperationException(),
            };
            await transaction.Connection!.ExecuteAsync(
                """
                INSERT INTO books (isbn, title, price_cents, available) VALUES (@isbn, @title, @cents, @available)
                ON CONFLICT (isbn) DO UPDATE SET title = excluded.title, price_cents = excluded.price_cents, available = excluded.available
                """,
                new { isbn, title, cents = Money.ToCents(price), available },
                transaction);
        }

        if (inserted == 1 && data is OrderConfirmed confirmed)
        {
            foreach (var line in confirmed.Lines)
            {
                await transaction.Connection!.ExecuteAsync(
                    "INSERT OR IGNORE INTO sold_lines (event_id, isbn, quantity, amount_cents) VALUES (@eventId, @Isbn, @Quantity, @cents)",
                    new { eventId, line.Isbn, line.Quantity, cents = Money.ToCents(line.Amount) },
                    transaction);
            }
        }
    }

    public static async Task<Summary> SummaryAsync(SqliteConnection connection, SqliteTransaction? transaction = null)
    {
        // Orders are counted by id: an order's lifecycle event is the fact, whatever re-deliveries did.
        var counts = await connection.QuerySingleAsync<(long Placed, long Confirmed, long Cancelled, long RevenueCents)>(
            """
            SELECT
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @placed),
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @confirmed),
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @cancelled),
              (SELECT coalesce(sum(amount_cents), 0) FROM (SELECT max(amount_cents) AS amount_cents FROM facts WHERE type = @confirmed GROUP BY order_id))
            """,
            new { placed = EventCatalog.OrderPlaced.TypeName, confirmed = EventCatalog.OrderConfirmed.TypeName, cancelled = EventCatalog.OrderCancelled.TypeName },
            transaction);
        var topBooks = await connection.QueryAsync<(string Isbn, long Quantity, long Cents)>(
            "SELECT isbn, sum(quantity) AS q, sum(amount_cents) FROM sold_lines GROUP BY isbn ORDER BY q DESC, isbn LIMIT 5",
            transaction: transaction);
        var byTopic = await connection.QueryAsync<(string Topic, long Events)>(
            "SELECT topic, count(*) FROM facts GROUP BY topic ORDER BY topic",
            transaction: transaction);
        return new Summary(
            counts.Placed,
            counts.Confirmed,
            counts.Cancelled,
            Money.FromCents(counts.RevenueCents),
            [.. topBooks.Select(b => new BookSales(b.Isbn, b.Quantity, Money.FromCents(b.Cents)))],
            [.. byTopic.Select(t => new TopicCount(t.Topic, t.Events))]);
    }

    public static Task<Funnel> FunnelAsync(SqliteConnection connection) =>
        connection.QuerySingleAsync<Funnel>(
            """
            SELECT
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @placed) AS Placed,
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @reserved) AS Reserved,
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @paid) AS Paid,
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @confirmed) AS Confirmed,
              (SELECT count(DISTINCT order_id) FROM facts WHERE type = @cancelled) AS Cancelled
            """,
            new
            {
                placed = EventCatalog.OrderPlaced.TypeName,
                reserved = EventCatalog.StockReserved.TypeName,
                paid = EventCatalog.PaymentSucceeded.TypeName,
                confirmed = EventCatalog.OrderConfirmed.TypeName,
                cancelled = EventCatalog.OrderCancelled.TypeName,
            });

    public static async Task<IReadOnlyList<Book>> BooksAsync(SqliteConnection connection) =>
        [.. (await connection.QueryAsync<(string Isbn, string Title, long Cents, long Available)>(
            "SELECT isbn, title, price_cents, available FROM books ORDER BY title"))
            .Select(b => new Book(b.Isbn, b.Title, Money.FromCents(b.Cents), (int)b.Available))];

    public static Task ClearAsync(SqliteTransaction transaction) =>
        transaction.Connection!.ExecuteAsync("DELETE FROM facts; DELETE FROM sold_lines;", transaction: transaction);
}
