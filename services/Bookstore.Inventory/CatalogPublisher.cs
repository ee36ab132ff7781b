using Bookstore.Inventory.Data;
using Bookstore.Inventory.Handlers;
using Bookstore.Messaging.Storage;
using Microsoft.Data.Sqlite;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Inventory;

/// <summary>At start-up: stocks a new database with the seed catalog, then publishes every book to
/// the compacted <c>book-catalog-updates</c>, so that a reader of that topic sees the whole catalog.</summary>
public sealed class CatalogPublisher(ServiceDatabase database, Outbox outbox, ILogger<CatalogPublisher> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var books = await database.WriteAsync(
            async transaction =>
            {
                await InventoryStore.SeedAsync(transaction, Catalog.Seed);
                var books = await InventoryStore.BooksAsync(transaction.Connection!, transaction);
                foreach (var book in books)
                {
                    await outbox.AddAsync(transaction, CatalogEvents.PriceOf(book));
                }

                return books;
            },
            cancellationToken);
        outbox.Committed();
        logger.LogInformation("Published {Count} books to the catalog", books.Count);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
