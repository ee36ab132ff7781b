using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;

namespace Bookstore.Orders.Data;

/// <summary>The history of a decided order, once the events it points at (topic, partition,
/// offset) are gone from Kafka. The order itself stays: it is the customer's record and what
/// <c>GET /orders/stats</c> counts, one small row per order. A pending order keeps its history
/// however old it is, since its outcome is still to be recorded.</summary>
public sealed class OrderHistoryPruneStep : IPruneStep
{
    public string Name => "OrderHistory";

    public TimeSpan? DefaultRetention => null;

    // A re-delivered StockReserved would only add a history line again, but the record it
    // joins must still be there for DecideAsync to ignore a late outcome.
    public bool GuardsAgainstRedelivery => true;

    /// <summary>The history lines it deletes.</summary>
    /// <remarks>It runs in the write lock: the lines come from the old ones (<c>order_history_by_age</c>),
    /// not from a scan of the whole history, which holds the horizon's worth of decided orders; a line
    /// written after its order was decided goes once it is as old. <c>INDEXED BY</c>: without ANALYZE
    /// statistics SQLite would rather scan the history and look each order up.</remarks>
    public static string Sql(SqlDialect sql) => $"""
        DELETE FROM order_history WHERE seq IN (
            SELECT h.seq FROM order_history h {sql?.IndexedBy("order_history_by_age")} JOIN orders o ON o.id = h.order_id
            WHERE h.at < @before AND o.status <> 'Pending' AND o.updated_at < @before
            LIMIT @limit)
        """;

    public Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        transaction.Connection!.ExecuteAsync(Sql(SqlDialect.Of(transaction)), new { before = before.ToString("O"), limit }, transaction);
}

/// <summary>An Idempotency-Key answers a client's retries of one request, not a replay of an event:
/// kept for a retry window (24 hours by default, as payment APIs do), then a key may be used again.</summary>
public sealed class IdempotencyKeysPruneStep : IPruneStep
{
    public string Name => "IdempotencyKeys";

    public TimeSpan? DefaultRetention => TimeSpan.FromHours(24);

    public bool GuardsAgainstRedelivery => false;

    // A key is written in the transaction that inserts its order, so the order's creation is the key's.
    public Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        transaction.Connection!.ExecuteAsync(
            """
            DELETE FROM customer_idempotency_keys WHERE (customer_id, key) IN (
                SELECT k.customer_id, k.key FROM customer_idempotency_keys k LEFT JOIN orders o ON o.id = k.order_id
                WHERE o.id IS NULL OR o.created_at < @before
                LIMIT @limit)
            """,
            new { before = before.ToString("O"), limit },
            transaction);
}
