using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;

namespace Bookstore.Payments.Handlers;

/// <summary>Stock is reserved: charge the order, once.</summary>
public sealed class ChargeOrder(ResilientGateway gateway) : IEventHandler<StockReserved>
{
    public async Task HandleAsync(EventContext context, StockReserved data, CancellationToken cancellationToken)
    {
        if (await PaymentStore.GetAsync(context.Connection, data.OrderId, context.Transaction) is not null)
        {
            return;
        }

        if (await PaymentStore.IsCancelledAsync(context, data.OrderId))
        {
            await FailAsync(context, data, "order cancelled before payment");
            return;
        }

        var (charge, failure) = await gateway.ChargeAsync(data.OrderId, data.Total, cancellationToken);
        if (charge is null)
        {
            await FailAsync(context, data, failure!);
            return;
        }

        await PaymentStore.RecordAsync(context, data.OrderId, charge.ChargeId, charge.Amount, PaymentStatus.Succeeded, null);
        await context.PublishAsync(new PaymentSucceeded(data.OrderId, charge.ChargeId, charge.Amount));
    }

    private static async Task FailAsync(EventContext context, StockReserved data, string reason)
    {
        await PaymentStore.RecordAsync(context, data.OrderId, null, data.Total, PaymentStatus.Failed, reason);
        await context.PublishAsync(new PaymentFailed(data.OrderId, data.Total, reason));
    }
}

/// <summary>A cancelled order is never charged, and a charge that got through anyway is refunded.</summary>
public sealed class RefundCancelledOrder(ResilientGateway gateway) : IEventHandler<OrderCancelled>
{
    public async Task HandleAsync(EventContext context, OrderCancelled data, CancellationToken cancellationToken)
    {
        await PaymentStore.MarkCancelledAsync(context, data.OrderId);
        if (await PaymentStore.GetAsync(context.Connection, data.OrderId, context.Transaction) is { Status: PaymentStatus.Succeeded } payment)
        {
            await gateway.RefundAsync(data.OrderId, cancellationToken);
            await PaymentStore.RecordAsync(context, data.OrderId, payment.PaymentId, payment.Amount, PaymentStatus.Refunded, $"order cancelled: {data.Reason}");
        }
    }
}
