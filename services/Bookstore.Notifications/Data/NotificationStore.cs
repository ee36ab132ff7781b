using Dapper;
using System.Data.Common;

namespace Bookstore.Notifications.Data;

public sealed record Notification(string Id, string CustomerId, string? OrderId, string Kind, string Subject, string Body, string Channel, DateTimeOffset At);

/// <summary>Every email, at most one per order and kind; one still waiting to be sent has a row in
/// <c>pending_work</c> (kind <c>email</c>) and is not listed as sent.</summary>
public static class NotificationStore
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS notifications (
            id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            order_id TEXT,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            channel TEXT NOT NULL,
            at TEXT NOT NULL) WITHOUT ROWID;
        CREATE UNIQUE INDEX IF NOT EXISTS one_notification_per_order_and_kind ON notifications (order_id, kind) WHERE order_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS notifications_by_customer ON notifications (customer_id, at);
        CREATE INDEX IF NOT EXISTS notifications_by_age ON notifications (at);
        """;

    /// <summary>False when this order already had a notification of this kind.</summary>
    public static async Task<bool> TryAddAsync(DbTransaction transaction, Notification notification) =>
        await transaction.Connection!.ExecuteAsync(
            """
            INSERT INTO notifications (id, customer_id, order_id, kind, subject, body, channel, at)
            VALUES (@Id, @CustomerId, @OrderId, @Kind, @Subject, @Body, @Channel, @AtText)
            ON CONFLICT DO NOTHING
            """,
            new { notification.Id, notification.CustomerId, notification.OrderId, notification.Kind, notification.Subject, notification.Body, notification.Channel, AtText = notification.At.ToString("O") },
            transaction) == 1;

    public static async Task<List<Notification>> FindAsync(DbConnection connection, string? customerId, string? orderId) =>
        [.. (await connection.QueryAsync<Row>(
            """
            SELECT id AS Id, customer_id AS CustomerId, order_id AS OrderId, kind AS Kind, subject AS Subject, body AS Body, channel AS Channel, at AS At
            FROM notifications
            WHERE (@customerId IS NULL OR customer_id = @customerId) AND (@orderId IS NULL OR order_id = @orderId)
              AND NOT EXISTS (SELECT 1 FROM pending_work WHERE pending_work.id = 'email:' || notifications.id)
            ORDER BY at LIMIT 500
            """,
            new { customerId, orderId })).Select(r => r.ToNotification())];

    private sealed record Row(string Id, string CustomerId, string? OrderId, string Kind, string Subject, string Body, string Channel, string At)
    {
        public Notification ToNotification() => new(Id, CustomerId, OrderId, Kind, Subject, Body, Channel, DateTimeOffset.Parse(At, System.Globalization.CultureInfo.InvariantCulture));
    }
}

/// <summary>Emails sent long enough ago that the event which asked for them can no longer come back.</summary>
/// <remarks>A notification is also what stops a re-delivered event from mailing the customer twice
/// (one per order and kind), hence the safe horizon by default. One still waiting to be sent stays.</remarks>
public sealed class NotificationsPruneStep : Bookstore.Messaging.Consuming.IPruneStep
{
    public string Name => "Notifications";

    public TimeSpan? DefaultRetention => null;

    public bool GuardsAgainstRedelivery => true;

    public Task<int> PruneAsync(DbTransaction transaction, DateTimeOffset before, int limit) =>
        transaction.Connection!.ExecuteAsync(
            """
            DELETE FROM notifications WHERE id IN (
                SELECT id FROM notifications
                WHERE at < @before AND NOT EXISTS (SELECT 1 FROM pending_work WHERE pending_work.id = 'email:' || notifications.id)
                LIMIT @limit)
            """,
            new { before = before.ToString("O"), limit },
            transaction);
}
