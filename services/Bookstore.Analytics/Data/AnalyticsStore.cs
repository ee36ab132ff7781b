using Bookstore.Analytics.Journeys;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;
using System.Globalization;
using Bookstore.Messaging.Consuming;

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
/// the facts and their roll-ups: recording is idempotent, so a re-delivery or a replay can never
/// count twice.</summary>
/// <remarks>Old facts are folded into roll-up tables (<see cref="FoldAsync"/>) a whole order at a
/// time, so an order counted by its id is counted in the roll-up or among the facts, never in
/// both. <c>fold_watermark</c> holds the horizon of the latest fold: an event older than that is
/// not recorded any more, since it may be in a roll-up already (a compacted topic's record, read
/// again by a replay) and its fact would then count it a second time.</remarks>
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
        CREATE INDEX IF NOT EXISTS facts_by_order_and_age ON facts (order_id, at);
        -- The fold looks for orders among the old facts only: without it, every fold read every fact.
        CREATE INDEX IF NOT EXISTS facts_by_age ON facts (at, order_id);
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
        CREATE TABLE IF NOT EXISTS rollup_orders (
            type TEXT PRIMARY KEY,
            orders INTEGER NOT NULL,
            amount_cents INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_topics (
            topic TEXT PRIMARY KEY,
            events INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_books (
            isbn TEXT PRIMARY KEY,
            quantity INTEGER NOT NULL,
            amount_cents INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS fold_watermark (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            folded_before TEXT NOT NULL);
        """ + JourneyStore.Schema;

    private const string FactsLock = "analytics:facts";

    // The orders that reached a step: those folded into the roll-up plus the distinct ones among the facts.
    private static string OrdersAt(string type) =>
        $"CAST((SELECT coalesce(sum(orders), 0) FROM rollup_orders WHERE type = {type}) + (SELECT count(DISTINCT order_id) FROM facts WHERE type = {type}) AS BIGINT)";

    /// <summary>Records the events' facts and, for events of an order, their rows of the order's
    /// journey (where each was read, its timestamps), a statement per table for the whole batch;
    /// returns how many were new (not there already, nor older than the latest fold).</summary>
    public static Task<int> RecordAsync(DbTransaction transaction, IReadOnlyList<ConsumedEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return RecordAsync(transaction, [.. events.Select(e => new Fact(
            e.Event.Id,
            e.Topic,
            e.Definition,
            e.Data,
            e.Event.Time,
            JourneyEvent.OrderIdOf(e.Data) is { } orderId ? JourneyEvent.From(e.Event, orderId, e.Topic, e.Partition, e.Offset) : null))]);
    }

    /// <summary>Records the event's fact; false when it was there already, or older than the latest fold.</summary>
    public static async Task<bool> RecordAsync(DbTransaction transaction, string eventId, string topic, EventDefinition definition, object data, DateTimeOffset at) =>
        await RecordAsync(transaction, [new Fact(eventId, topic, definition, data, at, Journey: null)]) == 1;

    private sealed record Fact(string EventId, string Topic, EventDefinition Definition, object Data, DateTimeOffset At, JourneyEvent? Journey);

    private static async Task<int> RecordAsync(DbTransaction transaction, IReadOnlyList<Fact> facts)
    {
        if (facts.Count == 0)
        {
            return 0;
        }

        var connection = transaction.Connection!;
        var sql = SqlDialect.Of(transaction);
        // Beside other recorders, never during a fold: a fold that deletes these events' facts and
        // raises the watermark must either be seen whole or not have started.
        await sql.ShareAsync(transaction, FactsLock);
        var rows = facts.Select(f =>
        {
            var (orderId, amount) = OrderAndAmountOf(f.Data);
            return new { event_id = f.EventId, topic = f.Topic, type = f.Definition.TypeName, order_id = orderId, amount_cents = amount is { } a ? Money.ToCents(a) : (long?)null, at = f.At.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture) };
        });
        var journeys = facts.Where(f => f.Journey is not null).Select(f => JourneyStore.RowOf(f.Journey!)).ToList();
        // One command for both tables: the journey's statement first, since a command's rows are
        // its first statement's that returns any, and only the facts' RETURNING does.
        var inserted = new HashSet<string>(
            await connection.QueryAsync<string>(
                $"""
                {(journeys.Count == 0 ? string.Empty : JourneyStore.InsertSql(sql) + ";")}
                INSERT INTO facts (event_id, topic, type, order_id, amount_cents, at)
                SELECT event_id, topic, type, order_id, amount_cents, at
                FROM {sql.Rows("@facts", "f", ("event_id", "TEXT"), ("topic", "TEXT"), ("type", "TEXT"), ("order_id", "TEXT"), ("amount_cents", "INTEGER"), ("at", "TEXT"))}
                WHERE at >= coalesce((SELECT folded_before FROM fold_watermark), '')
                ON CONFLICT DO NOTHING
                RETURNING event_id
                """,
                new { facts = SqlDialect.Objects(rows), journeys = SqlDialect.Objects(journeys) },
                transaction),
            StringComparer.Ordinal);
        if (inserted.Count == 0)
        {
            return 0;
        }

        // Both carry the book's whole state, and a book's events stay in order on its partition:
        // its last in the batch is its state.
        var books = facts
            .Where(f => inserted.Contains(f.EventId))
            .Select(f => BookOf(f.Data))
            .OfType<Book>()
            .GroupBy(b => b.Isbn, StringComparer.Ordinal)
            .Select(g => g.Last())
            .Select(b => new { isbn = b.Isbn, title = b.Title, price_cents = Money.ToCents(b.Price), available = b.Available })
            .ToList();
        var lines = facts
            .Where(f => f.Data is OrderConfirmed && inserted.Contains(f.EventId))
            .SelectMany(f => ((OrderConfirmed)f.Data).Lines.Select(line => new { event_id = f.EventId, isbn = line.Isbn, quantity = line.Quantity, amount_cents = Money.ToCents(line.Amount) }))
            .ToList();
        if (books.Count + lines.Count > 0)
        {
            await connection.ExecuteAsync(
                $"""
                INSERT INTO books (isbn, title, price_cents, available)
                SELECT isbn, title, price_cents, available
                FROM {sql.Rows("@books", "b", ("isbn", "TEXT"), ("title", "TEXT"), ("price_cents", "INTEGER"), ("available", "INTEGER"))}
                WHERE true
                ON CONFLICT (isbn) DO UPDATE SET title = excluded.title, price_cents = excluded.price_cents, available = excluded.available;
                INSERT INTO sold_lines (event_id, isbn, quantity, amount_cents)
                SELECT event_id, isbn, quantity, amount_cents
                FROM {sql.Rows("@lines", "l", ("event_id", "TEXT"), ("isbn", "TEXT"), ("quantity", "INTEGER"), ("amount_cents", "INTEGER"))}
                WHERE true
                ON CONFLICT DO NOTHING
                """,
                new { books = SqlDialect.Objects(books), lines = SqlDialect.Objects(lines) },
                transaction);
        }

        return inserted.Count;
    }

    /// <summary>The book's whole state, as both catalog events carry it.</summary>
    private static Book? BookOf(object data) => data switch
    {
        BookPriceChanged e => new Book(e.Isbn, e.Title, e.Price, e.Available),
        BookAvailabilityChanged e => new Book(e.Isbn, e.Title, e.Price, e.Available),
        _ => null,
    };

    private static (string? OrderId, decimal? Amount) OrderAndAmountOf(object data) => data switch
    {
        OrderPlaced e => (e.OrderId, e.Total),
        OrderConfirmed e => (e.OrderId, e.Total),
        OrderCancelled e => (e.OrderId, null),
        PaymentSucceeded e => (e.OrderId, e.Amount),
        PaymentFailed e => (e.OrderId, e.Amount),
        StockReserved e => (e.OrderId, e.Total),
        StockRejected e => (e.OrderId, null),
        StockReleased e => (e.OrderId, null),
        NotificationSent e => (e.OrderId, null),
        _ => (null, null),
    };

    public static async Task<Summary> SummaryAsync(DbConnection connection, DbTransaction? transaction = null)
    {
        // Orders are counted by id: an order's lifecycle event is the fact, whatever re-deliveries did.
        var counts = await connection.QuerySingleAsync<(long Placed, long Confirmed, long Cancelled, long RevenueCents)>(
            $"""
            SELECT
              {OrdersAt("@placed")},
              {OrdersAt("@confirmed")},
              {OrdersAt("@cancelled")},
              CAST((SELECT coalesce(sum(amount_cents), 0) FROM rollup_orders WHERE type = @confirmed)
                + (SELECT coalesce(sum(amount_cents), 0) FROM (SELECT max(amount_cents) AS amount_cents FROM facts WHERE type = @confirmed GROUP BY order_id) AS per_order) AS BIGINT)
            """,
            new { placed = EventCatalog.OrderPlaced.TypeName, confirmed = EventCatalog.OrderConfirmed.TypeName, cancelled = EventCatalog.OrderCancelled.TypeName },
            transaction);
        var topBooks = await connection.QueryAsync<(string Isbn, long Quantity, long Cents)>(
            """
            SELECT isbn, CAST(sum(quantity) AS BIGINT) AS q, CAST(sum(amount_cents) AS BIGINT) FROM (
                SELECT isbn, quantity, amount_cents FROM sold_lines UNION ALL SELECT isbn, quantity, amount_cents FROM rollup_books) AS sold
            GROUP BY isbn ORDER BY q DESC, isbn LIMIT 5
            """,
            transaction: transaction);
        var byTopic = await connection.QueryAsync<(string Topic, long Events)>(
            "SELECT topic, CAST(sum(events) AS BIGINT) FROM (SELECT topic, count(*) AS events FROM facts GROUP BY topic UNION ALL SELECT topic, events FROM rollup_topics) AS counted GROUP BY topic ORDER BY topic",
            transaction: transaction);
        return new Summary(
            counts.Placed,
            counts.Confirmed,
            counts.Cancelled,
            Money.FromCents(counts.RevenueCents),
            [.. topBooks.Select(b => new BookSales(b.Isbn, b.Quantity, Money.FromCents(b.Cents)))],
            [.. byTopic.Select(t => new TopicCount(t.Topic, t.Events))]);
    }

    public static Task<Funnel> FunnelAsync(DbConnection connection) =>
        connection.QuerySingleAsync<Funnel>(
            $"""
            SELECT
              {OrdersAt("@placed")} AS Placed,
              {OrdersAt("@reserved")} AS Reserved,
              {OrdersAt("@paid")} AS Paid,
              {OrdersAt("@confirmed")} AS Confirmed,
              {OrdersAt("@cancelled")} AS Cancelled
            """,
            new
            {
                placed = EventCatalog.OrderPlaced.TypeName,
                reserved = EventCatalog.StockReserved.TypeName,
                paid = EventCatalog.PaymentSucceeded.TypeName,
                confirmed = EventCatalog.OrderConfirmed.TypeName,
                cancelled = EventCatalog.OrderCancelled.TypeName,
            });

    public static async Task<IReadOnlyList<Book>> BooksAsync(DbConnection connection) =>
        [.. (await connection.QueryAsync<(string Isbn, string Title, long Cents, long Available)>(
            "SELECT isbn, title, price_cents, available FROM books ORDER BY title"))
            .Select(b => new Book(b.Isbn, b.Title, Money.FromCents(b.Cents), (int)b.Available))];

    /// <summary>Puts into <c>temp.folding</c> the facts of at most <c>@limit</c> orders whose every
    /// fact is older than <c>@horizon</c>.</summary>
    /// <remarks>It runs in the write lock: the candidates come from the old facts (<c>facts_by_age</c>),
    /// and each is checked for a young fact (<c>facts_by_order_and_age</c>), so a fold reads what it
    /// folds (and the few orders still under way), not every fact of the horizon (a GROUP BY over all
    /// orders took 1.6 s on 1.6 M facts). <c>INDEXED BY</c>: without ANALYZE statistics SQLite takes
    /// <c>order_id IS NOT NULL</c> on <c>facts_by_order_and_age</c> instead, a scan of every fact again.</remarks>
    public static string FoldableOrders(SqlDialect sql) => $"""
        INSERT INTO {sql?.Temporary("folding")} (event_id, order_id)
            SELECT event_id, order_id FROM facts WHERE order_id IN (
                SELECT DISTINCT old.order_id FROM facts old {sql?.IndexedBy("facts_by_age")}
                WHERE old.at < @horizon AND old.order_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM facts young WHERE young.order_id = old.order_id AND young.at >= @horizon)
                LIMIT @limit)
        """;

    /// <summary>Folds into the roll-ups, and deletes (with their journey rows: each was recorded with
    /// its fact, under the same watermark), the facts of at most <paramref name="limit"/>
    /// orders whose every fact is older than <paramref name="before"/>, then as many facts of no order
    /// (the catalog's) as the limit leaves room for; returns how many orders and facts of no order it took.</summary>
    /// <remarks>A whole order at a time: an order is then counted once per step, in the roll-up or
    /// among the facts. Its revenue is its largest confirmed amount, as the live query takes it.</remarks>
    public static async Task<int> FoldAsync(DbTransaction transaction, DateTimeOffset before, int limit)
    {
        var connection = transaction.Connection!;
        var sql = SqlDialect.Of(transaction);
        // Alone: transactions recording facts have committed (their young facts are seen) and new
        // ones wait for the raised watermark.
        await sql.SerializeAsync(transaction, FactsLock);
        var folding = sql.Temporary("folding");
        var horizon = before.ToUniversalTime().ToString("O");
        await connection.ExecuteAsync(
            sql.Schema($"""
                CREATE TEMP TABLE IF NOT EXISTS folding (event_id TEXT PRIMARY KEY, order_id TEXT) WITHOUT ROWID;
                DELETE FROM {folding};
                """),
            transaction: transaction);
        await connection.ExecuteAsync(FoldableOrders(sql), new { horizon, limit }, transaction);
        var orders = await connection.ExecuteScalarAsync<int>($"SELECT count(DISTINCT order_id) FROM {folding}", transaction: transaction);
        var others = await connection.ExecuteAsync(
            $"INSERT INTO {folding} (event_id, order_id) SELECT event_id, NULL FROM facts WHERE order_id IS NULL AND at < @horizon LIMIT @room",
            new { horizon, room = limit - orders },
            transaction);
        await connection.ExecuteAsync(
            $"""
            INSERT INTO rollup_orders (type, orders, amount_cents)
                SELECT type, count(*), coalesce(sum(amount_cents), 0) FROM (
                    SELECT f.type, f.order_id, max(f.amount_cents) AS amount_cents
                    FROM {folding} g JOIN facts f ON f.event_id = g.event_id
                    WHERE g.order_id IS NOT NULL GROUP BY f.type, f.order_id) AS per_order
                WHERE true GROUP BY type
                ON CONFLICT (type) DO UPDATE SET orders = rollup_orders.orders + excluded.orders, amount_cents = rollup_orders.amount_cents + excluded.amount_cents;
            INSERT INTO rollup_topics (topic, events)
                SELECT f.topic, count(*) FROM {folding} g JOIN facts f ON f.event_id = g.event_id WHERE true GROUP BY f.topic
                ON CONFLICT (topic) DO UPDATE SET events = rollup_topics.events + excluded.events;
            INSERT INTO rollup_books (isbn, quantity, amount_cents)
                SELECT s.isbn, sum(s.quantity), sum(s.amount_cents) FROM {folding} g JOIN sold_lines s ON s.event_id = g.event_id WHERE true GROUP BY s.isbn
                ON CONFLICT (isbn) DO UPDATE SET quantity = rollup_books.quantity + excluded.quantity, amount_cents = rollup_books.amount_cents + excluded.amount_cents;
            DELETE FROM sold_lines WHERE event_id IN (SELECT event_id FROM {folding});
            DELETE FROM journey_events WHERE event_id IN (SELECT event_id FROM {folding});
            DELETE FROM facts WHERE event_id IN (SELECT event_id FROM {folding});
            DELETE FROM {folding};
            """,
            transaction: transaction);
        if (orders + others > 0)
        {
            await connection.ExecuteAsync(
                """
                INSERT INTO fold_watermark (id, folded_before) VALUES (1, @horizon)
                    ON CONFLICT (id) DO UPDATE SET folded_before =
                        CASE WHEN excluded.folded_before > fold_watermark.folded_before THEN excluded.folded_before ELSE fold_watermark.folded_before END
                """,
                new { horizon },
                transaction);
        }

        return orders + others;
    }
}

/// <summary>Analytics' facts, folded into the roll-ups once their events can no longer come back.</summary>
public sealed class AnalyticsFactsPruneStep : Bookstore.Messaging.Consuming.IPruneStep
{
    public string Name => "AnalyticsFacts";

    public TimeSpan? DefaultRetention => null;

    // Folded facts are no longer there to turn a re-delivered event into a no-op; the watermark
    // keeps it from being counted twice, but then also a late first delivery goes uncounted.
    public bool GuardsAgainstRedelivery => true;

    public Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        AnalyticsStore.FoldAsync(transaction, before, limit);
}
