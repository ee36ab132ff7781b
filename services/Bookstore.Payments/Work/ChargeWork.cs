using Bookstore.Contracts.Events;
using Bookstore.Messaging.Work;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;
using System.Data.Common;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Payments.Work;

public sealed record ChargeIntent(string OrderId, decimal Total);

/// <summary>Charges an order at the gateway, outside any transaction, and publishes the one
/// PaymentSucceeded or PaymentFailed of the order. A charge repeated after a crash is harmless:
/// the gateway returns the first charge of the order.</summary>
public sealed class ChargeWork(ResilientGateway gateway, Outbox outbox, PendingWorkSignal work, PaymentOptions options) : IPendingWorkHandler
{
    public const string WorkKind = "charge";
    public const string CancelledBeforePayment = "order cancelled before payment";

    public string Kind => WorkKind;

    public async Task<bool> ShouldCallAsync(DbTransaction transaction, WorkItem item)
    {
        var intent = item.Read<ChargeIntent>();
        await PaymentStore.LockOrderAsync(transaction, intent.OrderId);
        if (await PaymentStore.GetAsync(transaction.Connection!, intent.OrderId, transaction) is not null)
        {
            return false;
        }

        if (await PaymentStore.IsCancelledAsync(transaction, intent.OrderId))
        {
            await FailAsync(transaction, intent, CancelledBeforePayment);
            return false;
        }

        return true;
    }

    public async Task<object?> CallAsync(WorkItem item, CancellationToken cancellationToken)
    {
        var intent = item.Read<ChargeIntent>();
        return await gateway.ChargeAsync(intent.OrderId, intent.Total, cancellationToken);
    }

    public async Task CompleteAsync(DbTransaction transaction, WorkItem item, object? result)
    {
        var charge = (Charge)result!;
        await PaymentStore.LockOrderAsync(transaction, charge.OrderId);
        if (await PaymentStore.GetAsync(transaction.Connection!, charge.OrderId, transaction) is not null)
        {
            return;
        }

        await PaymentStore.RecordAsync(transaction, charge.OrderId, charge.ChargeId, charge.Amount, PaymentStatus.Succeeded, null);
        await outbox.AddAsync(transaction, new PaymentSucceeded(charge.OrderId, charge.ChargeId, charge.Amount));
        // The order was cancelled while the charge was in flight: the cancellation found no
        // charge to refund, so the refund is asked for here, in the same transaction.
        if (await PaymentStore.IsCancelledAsync(transaction, charge.OrderId))
        {
            await AskRefundAsync(transaction, charge.OrderId, "order cancelled while it was being charged");
        }
    }

    /// <summary>A charge is given up after <see cref="PaymentOptions.ChargeAttempts"/> failed calls:
    /// the order then fails with the reason instead of waiting for the gateway for ever.</summary>
    public async Task<bool> GiveUpAsync(DbTransaction transaction, WorkItem item, string lastError)
    {
        if (item.Attempts < options.ChargeAttempts)
        {
            return false;
        }

        var intent = item.Read<ChargeIntent>();
        await PaymentStore.LockOrderAsync(transaction, intent.OrderId);
        if (await PaymentStore.GetAsync(transaction.Connection!, intent.OrderId, transaction) is null)
        {
            await FailAsync(transaction, intent, $"payment gateway unavailable after {item.Attempts} attempts: {lastError}");
            // Should a timed-out call have gone through after all, the refund undoes it (a no-op without a charge).
            await AskRefundAsync(transaction, intent.OrderId, "charge abandoned");
        }

        return true;
    }

    private async Task FailAsync(DbTransaction transaction, ChargeIntent intent, string reason)
    {
        await PaymentStore.RecordAsync(transaction, intent.OrderId, null, intent.Total, PaymentStatus.Failed, reason);
        await outbox.AddAsync(transaction, new PaymentFailed(intent.OrderId, intent.Total, reason));
    }

    private async Task AskRefundAsync(DbTransaction transaction, string orderId, string reason)
    {
        if (await PendingWork.AddAsync(transaction, RefundWork.WorkKind, orderId, new RefundIntent(orderId, reason)))
        {
            work.Notify();
        }
    }
}
