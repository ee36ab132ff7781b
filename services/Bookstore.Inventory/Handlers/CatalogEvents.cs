using Bookstore.Contracts.Events;
using Bookstore.Inventory.Data;
using Bookstore.Messaging.Consuming;
using System.Data.Common;

namespace Bookstore.Inventory.Handlers;

/// <summary>Availability is published when a book sells out or comes back, not on every sale:
/// the catalog topic describes books, not the order stream.</summary>
internal static class CatalogEvents
{
    public static async Task PublishSoldOutAsync(EventContext context, IEnumerable<OrderLine> lines)
    {
        foreach (var line in lines)
        {
            if (await InventoryStore.BookAsync(context.Connection, line.Isbn, context.Transaction) is { Stock: 0 } book)
            {
                await context.PublishAsync(AvailabilityOf(book));
            }
        }
    }

    public static async Task PublishBackInStockAsync(EventContext context, IEnumerable<OrderLine> lines)
    {
        foreach (var line in lines)
        {
            if (await InventoryStore.BookAsync(context.Connection, line.Isbn, context.Transaction) is { } book && book.Stock == line.Quantity)
            {
                await context.PublishAsync(AvailabilityOf(book));
            }
        }
    }

    public static BookAvailabilityChanged AvailabilityOf(Book book) => new(book.Isbn, book.Title, book.Price, book.Stock);

    public static BookPriceChanged PriceOf(Book book) => new(book.Isbn, book.Title, book.Price, book.Stock);
}
