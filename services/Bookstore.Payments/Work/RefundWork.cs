using Bookstore.Messaging.Work;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;
using System.Data.Common;

namespace Bookstore.Payments.Work;

public sealed record RefundIntent(string OrderId, string Reason);

/// <summary>Refunds an order's charge at the gateway, outside any transaction. Never given up: a
/// refund waits for the gateway as long as it takes. The gateway applies a refund once and
/// ignores one without a charge, so a repeat after a crash changes nothing.</summary>
public sealed class RefundWork(ResilientGateway gateway) : IPendingWorkHandler
{
    public const string WorkKind = "refund";

    public string Kind => WorkKind;

    public Task<bool> ShouldCallAsync(DbTransaction transaction, WorkItem item) => Task.FromResult(true);

    public async Task<object?> CallAsync(WorkItem item, CancellationToken cancellationToken) =>
        await gateway.RefundAsync(item.Read<RefundIntent>().OrderId, cancellationToken);

    public async Task CompleteAsync(DbTransaction transaction, WorkItem item, object? result)
    {
        var intent = item.Read<RefundIntent>();
        if ((RefundResult)result! != RefundResult.NoCharge
            && await PaymentStore.GetAsync(transaction.Connection!, intent.OrderId, transaction) is { Status: PaymentStatus.Succeeded } payment)
        {
            await PaymentStore.RecordAsync(transaction, intent.OrderId, payment.PaymentId, payment.Amount, PaymentStatus.Refunded, intent.Reason);
        }
    }

    public Task<bool> GiveUpAsync(DbTransaction transaction, WorkItem item, string lastError) => Task.FromResult(false);
}
