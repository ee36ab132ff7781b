using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Orders.Data;

namespace Bookstore.Orders.Handlers;

/// <summary>Paid: the order is confirmed.</summary>
public sealed class ConfirmOnPayment(OrderMetrics metrics) : IEventHandler<PaymentSucceeded>
{
    public async Task HandleAsync(EventContext context, PaymentSucceeded data, CancellationToken cancellationToken)
    {
        await OrderStore.AddHistoryAsync(context, data.OrderId, "paid", $"payment {data.PaymentId}, {data.Amount}");
        if (await OrderStore.DecideAsync(context, data.OrderId, OrderStatus.Confirmed, null) is { } order)
        {
            await OrderStore.AddHistoryAsync(context, order.Id, "confirmed", null);
            await context.PublishAsync(new OrderConfirmed(order.Id, order.CustomerId, order.Lines, order.Total));
            var sincePlaced = DateTimeOffset.UtcNow - order.CreatedAt;
            context.AfterCommit(() => metrics.Decided("confirmed", null, sincePlaced));
        }
    }
}

/// <summary>Not paid: the order is cancelled with the payment's reason.</summary>
public sealed class CancelOnPaymentFailure(OrderMetrics metrics) : IEventHandler<PaymentFailed>
{
    public Task HandleAsync(EventContext context, PaymentFailed data, CancellationToken cancellationToken) =>
        Cancellation.CancelAsync(context, metrics, data.OrderId, "payment failed", $"payment failed: {data.Reason}");
}

/// <summary>Not in stock: the order is cancelled with the inventory's reason.</summary>
public sealed class CancelOnStockRejection(OrderMetrics metrics) : IEventHandler<StockRejected>
{
    public Task HandleAsync(EventContext context, StockRejected data, CancellationToken cancellationToken) =>
        Cancellation.CancelAsync(context, metrics, data.OrderId, "stock rejected", data.Reason);
}

public sealed class RecordStockReserved : IEventHandler<StockReserved>
{
    public Task HandleAsync(EventContext context, StockReserved data, CancellationToken cancellationToken) =>
        OrderStore.AddHistoryAsync(context, data.OrderId, "stock reserved", null);
}

public sealed class RecordStockReleased : IEventHandler<StockReleased>
{
    public Task HandleAsync(EventContext context, StockReleased data, CancellationToken cancellationToken) =>
        OrderStore.AddHistoryAsync(context, data.OrderId, "stock released", data.Reason);
}

internal static class Cancellation
{
    public static async Task CancelAsync(EventContext context, OrderMetrics metrics, string orderId, string step, string reason)
    {
        await OrderStore.AddHistoryAsync(context, orderId, step, reason);
        if (await OrderStore.DecideAsync(context, orderId, OrderStatus.Cancelled, reason) is { } order)
        {
            await OrderStore.AddHistoryAsync(context, order.Id, "cancelled", reason);
            await context.PublishAsync(new OrderCancelled(order.Id, order.CustomerId, reason));
            var sincePlaced = DateTimeOffset.UtcNow - order.CreatedAt;
            context.AfterCommit(() => metrics.Decided("cancelled", step, sincePlaced));
        }
    }
}
