using Bookstore.Messaging.Consuming;
using Dapper;
using Microsoft.Data.Sqlite;

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

    public Task<int> PruneAsync(SqliteTransaction transaction, DateTimeOffset before, int limit) =>
        transaction.Connection!.ExecuteAsync(
            """
            DELETE FROM order_history WHERE seq IN (
                SELECT h.seq FROM order_history h JOIN orders o ON o.id = h.order_id
                WHERE o.status <> 'Pending' AND o.updated_at < @before
                ORDER BY h.seq LIMIT @limit)
            """,
            new { before = before.ToString("O"), limit },
            transaction);
}

/// <summary>An Idempotency-Key answers a client's retries of one request, not a replay of an event:
/// kept for a retry window (24 hours by default, as payment APIs do), then a key may be used again.</summary>
public sealed class IdempotencyKeysPruneStep : IPruneStep
{
    public string Name => "IdempotencyKeys";

    public TimeSpan? DefaultRetention => TimeSpan.FromHours(24);

    public bool GuardsAgainstRedelivery => false;

    // A key is written in the transaction that inserts its order, so the order's creation is the key's.
    public Task<int> PruneAsync(SqliteTransaction transaction, DateTimeOffset before, int limit) =>
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
