using Bookstore.Contracts.Events;
using Bookstore.Inventory.Data;
using Bookstore.Messaging.Consuming;

namespace Bookstore.Inventory.Handlers;

/// <summary>Reserves every line of a placed order, or none of them.</summary>
public sealed class ReserveStock : IEventHandler<OrderPlaced>
{
    private const string AllLines = "reservation";

    public async Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken)
    {
        if (await InventoryStore.ReservationStateAsync(context.Transaction, data.OrderId) is not null)
        {
            return;
        }

        context.Transaction.Save(AllLines);
        var rejection = await TryReserveAllAsync(context, data);
        if (rejection is null)
        {
            context.Transaction.Release(AllLines);
            await InventoryStore.SetReservationAsync(context.Transaction, data.OrderId, ReservationStates.Reserved, data.Lines);
            await context.PublishAsync(new StockReserved(data.OrderId, data.CustomerId, data.Lines, data.Total));
            await CatalogEvents.PublishSoldOutAsync(context, data.Lines);
            return;
        }

        context.Transaction.Rollback(AllLines);
        context.Transaction.Release(AllLines);
        await InventoryStore.SetReservationAsync(context.Transaction, data.OrderId, ReservationStates.Rejected, data.Lines);
        await context.PublishAsync(new StockRejected(data.OrderId, rejection));
    }

    private static async Task<string?> TryReserveAllAsync(EventContext context, OrderPlaced data)
    {
        // In one order of books for every order, so that two instances reserving the same books
        // on a server database lock them in the same order (no deadlock).
        foreach (var line in data.Lines.OrderBy(l => l.Isbn, StringComparer.Ordinal))
        {
            if (!await InventoryStore.TryReserveAsync(context.Transaction, line.Isbn, line.Quantity))
            {
                var book = await InventoryStore.BookAsync(context.Connection, line.Isbn, context.Transaction);
                return book is null
                    ? $"unknown book {line.Isbn}"
                    : $"out of stock: {line.Isbn} ({book.Title}): {line.Quantity} requested, {book.Stock} available";
            }
        }

        return null;
    }
}

public static class ReservationStates
{
    public const string Reserved = "reserved";
    public const string Rejected = "rejected";
    public const string Consumed = "consumed";
    public const string Released = "released";
    public const string Returned = "returned";
}
