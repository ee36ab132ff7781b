using Bookstore.Contracts.Events;
using Bookstore.Inventory.Data;
using Bookstore.Messaging.Consuming;

namespace Bookstore.Inventory.Handlers;

/// <summary>Paid: the reserved units leave the store.</summary>
public sealed class ConsumeReservation : IEventHandler<PaymentSucceeded>
{
    public async Task HandleAsync(EventContext context, PaymentSucceeded data, CancellationToken cancellationToken)
    {
        if (await Reservations.TakeAsync(context, data.OrderId, ReservationStates.Reserved, ReservationStates.Consumed) is { } lines)
        {
            await InventoryStore.ConsumeAsync(context.Transaction, lines);
        }
    }
}

/// <summary>Not paid: the reserved units go back on sale.</summary>
public sealed class ReleaseOnPaymentFailure : IEventHandler<PaymentFailed>
{
    public async Task HandleAsync(EventContext context, PaymentFailed data, CancellationToken cancellationToken)
    {
        if (await Reservations.TakeAsync(context, data.OrderId, ReservationStates.Reserved, ReservationStates.Released) is { } lines)
        {
            await InventoryStore.ReleaseAsync(context.Transaction, lines);
            await context.PublishAsync(new StockReleased(data.OrderId, $"payment failed: {data.Reason}"));
            await CatalogEvents.PublishBackInStockAsync(context, lines);
        }
    }
}

/// <summary>Cancelled (by timeout, say) while still holding stock, or even after being paid:
/// whatever the order holds comes back.</summary>
public sealed class ReleaseOnCancellation : IEventHandler<OrderCancelled>
{
    public async Task HandleAsync(EventContext context, OrderCancelled data, CancellationToken cancellationToken)
    {
        var lines = await Reservations.TakeAsync(context, data.OrderId, ReservationStates.Reserved, ReservationStates.Released);
        if (lines is not null)
        {
            await InventoryStore.ReleaseAsync(context.Transaction, lines);
        }
        else if ((lines = await Reservations.TakeAsync(context, data.OrderId, ReservationStates.Consumed, ReservationStates.Returned)) is not null)
        {
            await InventoryStore.ReturnAsync(context.Transaction, lines);
        }
        else
        {
            return;
        }

        await context.PublishAsync(new StockReleased(data.OrderId, $"order cancelled: {data.Reason}"));
        await CatalogEvents.PublishBackInStockAsync(context, lines);
    }
}

internal static class Reservations
{
    /// <summary>The reservation's lines if it is in state <paramref name="from"/>, now moved to <paramref name="to"/>.</summary>
    public static async Task<IReadOnlyList<OrderLine>?> TakeAsync(EventContext context, string orderId, string from, string to)
    {
        var lines = await Dapper.SqlMapper.QuerySingleOrDefaultAsync<string?>(
            context.Connection,
            "UPDATE reservations SET state = @to, updated_at = @at WHERE order_id = @orderId AND state = @from RETURNING lines",
            new { orderId, from, to, at = DateTimeOffset.UtcNow.ToString("O") },
            context.Transaction);
        return lines is null ? null : System.Text.Json.JsonSerializer.Deserialize<List<OrderLine>>(lines);
    }
}
