using System.Data.Common;
using System.Globalization;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Storage;
using Dapper;

namespace Bookstore.Analytics.Journeys;

/// <summary>The journey's record of each event of an order, one row per event id, written with its
/// fact (<see cref="Data.AnalyticsStore.RecordAsync(DbTransaction, IReadOnlyList{Bookstore.Messaging.Consuming.ConsumedEvent})"/>)
/// and folded away with it.</summary>
public static class JourneyStore
{
    /// <remarks>Timestamps are ISO-8601 UTC text, as everywhere in the suite's schemas: they sort in
    /// time order and read back to the tick.</remarks>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS journey_events (
            event_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            type TEXT NOT NULL,
            source TEXT NOT NULL,
            topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset INTEGER NOT NULL,
            written_at TEXT NOT NULL,
            published_at TEXT,
            causation_id TEXT,
            cause_fetched_at TEXT,
            work_queued_at TEXT,
            work_started_at TEXT,
            trace_id TEXT) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS journey_events_by_order ON journey_events (order_id, written_at);
        """;

    /// <summary>The rows of a batch's events (<c>@journeys</c>, from <see cref="RowOf"/>), under the
    /// same rule as their facts: nothing older than the latest fold (it may have been folded
    /// already), nothing twice. Sent in one command with the facts' statement.</summary>
    public static string InsertSql(SqlDialect sql) => $"""
        INSERT INTO journey_events (event_id, order_id, type, source, topic, kafka_partition, kafka_offset, written_at,
                                    published_at, causation_id, cause_fetched_at, work_queued_at, work_started_at, trace_id)
        SELECT event_id, order_id, type, source, topic, kafka_partition, kafka_offset, written_at,
               published_at, causation_id, cause_fetched_at, work_queued_at, work_started_at, trace_id
        FROM {sql.Rows(
            "@journeys",
            "j",
            ("event_id", "TEXT"),
            ("order_id", "TEXT"),
            ("type", "TEXT"),
            ("source", "TEXT"),
            ("topic", "TEXT"),
            ("kafka_partition", "INTEGER"),
            ("kafka_offset", "INTEGER"),
            ("written_at", "TEXT"),
            ("published_at", "TEXT"),
            ("causation_id", "TEXT"),
            ("cause_fetched_at", "TEXT"),
            ("work_queued_at", "TEXT"),
            ("work_started_at", "TEXT"),
            ("trace_id", "TEXT"))}
        WHERE written_at >= coalesce((SELECT folded_before FROM fold_watermark), '')
        ON CONFLICT DO NOTHING
        """;

    /// <summary>One event's row for <see cref="InsertSql"/>, its properties named as the columns.</summary>
    public static object RowOf(JourneyEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return new
        {
            event_id = e.EventId,
            order_id = e.OrderId,
            type = e.Type,
            source = e.Source,
            topic = e.Topic,
            kafka_partition = e.Partition,
            kafka_offset = e.Offset,
            written_at = Text(e.WrittenAt),
            published_at = Text(e.PublishedAt),
            causation_id = e.CausationId,
            cause_fetched_at = Text(e.CauseFetchedAt),
            work_queued_at = Text(e.WorkQueuedAt),
            work_started_at = Text(e.WorkStartedAt),
            trace_id = e.TraceId,
        };
    }

    public static string? Text(DateTimeOffset? at) => at?.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private const string Columns = """
        event_id AS EventId, order_id AS OrderId, type AS Type, source AS Source, topic AS Topic,
        kafka_partition AS KafkaPartition, kafka_offset AS KafkaOffset, written_at AS WrittenAt, published_at AS PublishedAt,
        causation_id AS CausationId, cause_fetched_at AS CauseFetchedAt, work_queued_at AS WorkQueuedAt,
        work_started_at AS WorkStartedAt, trace_id AS TraceId
        """;

    /// <summary>Orders whose events one statement reads: ≈ 2 MB of rows and events at a time (1,000
    /// orders a read raised Analytics' RSS by ≈ 40 MiB for each breakdown).</summary>
    public const int OrdersPerRead = 200;

    /// <summary>The recorded events of one order.</summary>
    public static async Task<IReadOnlyList<JourneyEvent>> EventsOfAsync(DbConnection connection, string orderId) =>
        [.. (await connection.QueryAsync<Row>($"SELECT {Columns} FROM journey_events WHERE order_id = @orderId", new { orderId })).Select(r => r.ToEvent())];

    /// <summary>The recorded events of the orders <paramref name="orderIds"/>, read a chunk of orders
    /// per statement (the ids as one parameter).</summary>
    public static async Task<IReadOnlyList<JourneyEvent>> EventsOfAsync(DbConnection connection, IReadOnlyList<string> orderIds, int chunk = OrdersPerRead)
    {
        ArgumentNullException.ThrowIfNull(orderIds);
        var sql = SqlDialect.Of(connection);
        var events = new List<JourneyEvent>();
        foreach (var ids in orderIds.Chunk(chunk))
        {
            var rows = await connection.QueryAsync<Row>(
                $"SELECT {Columns} FROM journey_events WHERE order_id IN (SELECT value FROM {sql.Values("@ids")})",
                new { ids = sql.List(ids) });
            events.AddRange(rows.Select(r => r.ToEvent()));
        }

        return events;
    }

    /// <summary>How many orders were placed (OrderPlaced written) in [<paramref name="from"/>,
    /// <paramref name="to"/>), and at most <paramref name="sample"/> of them spread evenly over the
    /// window, in the order they were placed. The database picks them: a long run's ids are never
    /// all read into the service.</summary>
    public static async Task<(int Placed, IReadOnlyList<string> Sample)> OrdersPlacedAsync(DbConnection connection, DateTimeOffset from, DateTimeOffset to, int sample)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sample, 1);
        // Of n rows, row i is taken when (i * sample) mod n < sample: exactly sample rows, the first of
        // each stretch of n / sample.
        var rows = (await connection.QueryAsync<(string OrderId, long Placed)>(
            """
            SELECT order_id, n FROM (
                SELECT order_id, row_number() OVER (ORDER BY at) - 1 AS i, count(*) OVER () AS n
                FROM facts WHERE at >= @from AND at < @to AND type = @placed AND order_id IS NOT NULL) AS placed
            WHERE n <= @sample OR (i * @sample) % n < @sample
            ORDER BY i
            """,
            new { from = Text(from), to = Text(to), placed = EventCatalog.OrderPlaced.TypeName, sample })).AsList();
        return (rows.Count == 0 ? 0 : checked((int)rows[0].Placed), [.. rows.Select(r => r.OrderId)]);
    }

    /// <summary>As Dapper reads a row on either backend (PostgreSQL's integers are 64-bit).</summary>
    private sealed class Row
    {
        public string EventId { get; init; } = string.Empty;

        public string OrderId { get; init; } = string.Empty;

        public string Type { get; init; } = string.Empty;

        public string Source { get; init; } = string.Empty;

        public string Topic { get; init; } = string.Empty;

        public long KafkaPartition { get; init; }

        public long KafkaOffset { get; init; }

        public string WrittenAt { get; init; } = string.Empty;

        public string? PublishedAt { get; init; }

        public string? CausationId { get; init; }

        public string? CauseFetchedAt { get; init; }

        public string? WorkQueuedAt { get; init; }

        public string? WorkStartedAt { get; init; }

        public string? TraceId { get; init; }

        public JourneyEvent ToEvent() => new(
            EventId, OrderId, Type, Source, Topic, (int)KafkaPartition, KafkaOffset, At(WrittenAt)!.Value,
            At(PublishedAt), CausationId, At(CauseFetchedAt), At(WorkQueuedAt), At(WorkStartedAt), TraceId);

        private static DateTimeOffset? At(string? text) =>
            text is null ? null : DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
    }
}
