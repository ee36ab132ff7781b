using Bookstore.Inventory.Data;
using Bookstore.Inventory.Handlers;
using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Inventory;

/// <summary>At start-up: stocks a new database with the seed catalog, then publishes every book to
/// the compacted <c>book-catalog-updates</c>, so that a reader of that topic sees the whole catalog.
/// The service is ready once those events have left its outbox.</summary>
public sealed class CatalogPublisher(ServiceDatabase database, Outbox outbox, ILogger<CatalogPublisher> logger) : IHostedService, IHealthCheck
{
    private long _publishedThrough = long.MaxValue;
    private volatile bool _published;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var books = await database.WriteAsync(
            async transaction =>
            {
                await InventoryStore.SeedAsync(transaction, Catalog.Seed);
                // Locked: a reservation committed meanwhile by another instance would otherwise
                // publish the newer stock before this transaction publishes the older one.
                var books = await InventoryStore.BooksLockedAsync(transaction);
                foreach (var book in books)
                {
                    await outbox.AddAsync(transaction, CatalogEvents.PriceOf(book));
                }

                _publishedThrough = await transaction.Connection!.ExecuteScalarAsync<long>("SELECT coalesce(max(seq), 0) FROM outbox", transaction: transaction);
                return books;
            },
            cancellationToken);
        outbox.Committed();
        logger.LogInformation("Published {Count} books to the catalog", books.Count);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!_published)
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            _published = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM outbox WHERE seq <= @through", new { through = _publishedThrough }) == 0;
        }

        return _published ? HealthCheckResult.Healthy("catalog published") : HealthCheckResult.Unhealthy("publishing the catalog");
    }
}
