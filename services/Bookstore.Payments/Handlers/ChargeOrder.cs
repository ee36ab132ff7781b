using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Work;
using Bookstore.Payments.Data;
using Bookstore.Payments.Work;

namespace Bookstore.Payments.Handlers;

/// <summary>Stock is reserved: record the intent to charge the order. The gateway is called by
/// <see cref="ChargeWork"/>, outside this batch's transaction.</summary>
public sealed class ChargeOrder(PendingWorkSignal work) : IEventHandler<StockReserved>
{
    public async Task HandleAsync(EventContext context, StockReserved data, CancellationToken cancellationToken)
    {
        if (await PaymentStore.GetAsync(context.Connection, data.OrderId, context.Transaction) is not null)
        {
            return;
        }

        // An order already cancelled is failed, uncharged, when the intent is claimed (ChargeWork.ShouldCallAsync).
        if (await PendingWork.AddAsync(context.Transaction, ChargeWork.WorkKind, data.OrderId, new ChargeIntent(data.OrderId, data.Total)))
        {
            context.AfterCommit(work.Notify);
        }
    }
}

/// <summary>A cancelled order is never charged (<see cref="ChargeWork"/> checks before calling),
/// and a charge that got through anyway is refunded, once, by <see cref="RefundWork"/>.</summary>
public sealed class RefundCancelledOrder(PendingWorkSignal work) : IEventHandler<OrderCancelled>
{
    public async Task HandleAsync(EventContext context, OrderCancelled data, CancellationToken cancellationToken)
    {
        await PaymentStore.LockOrderAsync(context.Transaction, data.OrderId);
        await PaymentStore.MarkCancelledAsync(context.Transaction, data.OrderId);
        // A charge still pending or in flight sees the cancellation when it completes and asks for the refund itself.
        if (await PaymentStore.GetAsync(context.Connection, data.OrderId, context.Transaction) is { Status: PaymentStatus.Succeeded }
            && await PendingWork.AddAsync(context.Transaction, RefundWork.WorkKind, data.OrderId, new RefundIntent(data.OrderId, $"order cancelled: {data.Reason}")))
        {
            context.AfterCommit(work.Notify);
        }
    }
}
