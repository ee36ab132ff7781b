using Bookstore.Contracts;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;

namespace Bookstore.Payments.Data;

public sealed record Payment(string OrderId, string? PaymentId, decimal Amount, string Status, string? Reason, DateTimeOffset At);

public static class PaymentStatus
{
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";
    public const string Refunded = "Refunded";
}

/// <summary>One payment per order (the primary key is the order id), and the orders known to be
/// cancelled, so that stock reserved for a cancelled order is never charged. Charges and refunds
/// not yet made wait in <c>pending_work</c> (see <see cref="Bookstore.Messaging.Work.PendingWork"/>).</summary>
public static class PaymentStore
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS payments (
            order_id TEXT PRIMARY KEY,
            payment_id TEXT,
            amount_cents INTEGER NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            at TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS cancelled_orders (
            order_id TEXT PRIMARY KEY) WITHOUT ROWID;
        """;

    public static async Task<Payment?> GetAsync(DbConnection connection, string orderId, DbTransaction? transaction = null) =>
        (await connection.QuerySingleOrDefaultAsync<PaymentRow>(
            "SELECT order_id AS OrderId, payment_id AS PaymentId, amount_cents AS AmountCents, status AS Status, reason AS Reason, at AS At FROM payments WHERE order_id = @orderId",
            new { orderId },
            transaction))?.ToPayment();

    public static Task RecordAsync(DbTransaction transaction, string orderId, string? paymentId, decimal amount, string status, string? reason) =>
        transaction.Connection!.ExecuteAsync(
            """
            INSERT INTO payments (order_id, payment_id, amount_cents, status, reason, at) VALUES (@orderId, @paymentId, @cents, @status, @reason, @at)
            ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, at = excluded.at
            """,
            new { orderId, paymentId, cents = Money.ToCents(amount), status, reason, at = DateTimeOffset.UtcNow.ToString("O") },
            transaction);

    /// <summary>Until <paramref name="transaction"/> ends, no other transaction of this service
    /// decides about the payment of <paramref name="orderId"/>. A cancellation and a completing charge
    /// each read what the other writes (the payment, the cancellation); on SQLite writers take turns
    /// anyway, but on PostgreSQL both could read before either wrote, and a charge of a cancelled
    /// order would then never be refunded.</summary>
    public static Task LockOrderAsync(DbTransaction transaction, string orderId) =>
        SqlDialect.Of(transaction).SerializeAsync(transaction, $"payment:{orderId}");

    public static Task MarkCancelledAsync(DbTransaction transaction, string orderId) =>
        transaction.Connection!.ExecuteAsync("INSERT INTO cancelled_orders (order_id) VALUES (@orderId) ON CONFLICT DO NOTHING", new { orderId }, transaction);

    public static Task<bool> IsCancelledAsync(DbTransaction transaction, string orderId) =>
        transaction.Connection!.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = @orderId)", new { orderId }, transaction);

    private sealed record PaymentRow(string OrderId, string? PaymentId, long AmountCents, string Status, string? Reason, string At)
    {
        public Payment ToPayment() => new(OrderId, PaymentId, Money.FromCents(AmountCents), Status, Reason, DateTimeOffset.Parse(At, System.Globalization.CultureInfo.InvariantCulture));
    }
}
