using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Orders.Data;

namespace Bookstore.Orders.Handlers;

/// <summary>Keeps the prices orders are placed at, as the Inventory Service publishes them.</summary>
public sealed class UpdateCatalogPrice : IEventHandler<BookPriceChanged>
{
    public Task HandleAsync(EventContext context, BookPriceChanged data, CancellationToken cancellationToken) =>
        OrderStore.UpsertCatalogAsync(context, data.Isbn, data.Title, data.Price, data.Available);
}

public sealed class UpdateCatalogAvailability : IEventHandler<BookAvailabilityChanged>
{
    public Task HandleAsync(EventContext context, BookAvailabilityChanged data, CancellationToken cancellationToken) =>
        OrderStore.UpsertCatalogAsync(context, data.Isbn, data.Title, data.Price, data.Available);
}
