namespace Bookstore.Contracts.Events;

public sealed record OrderLine(string Isbn, int Quantity, decimal UnitPrice)
{
    public decimal Amount => Quantity * UnitPrice;
}

public sealed record OrderPlaced(string OrderId, string CustomerId, IReadOnlyList<OrderLine> Lines, decimal Total);

public sealed record OrderConfirmed(string OrderId, string CustomerId, IReadOnlyList<OrderLine> Lines, decimal Total);

public sealed record OrderCancelled(string OrderId, string CustomerId, string Reason);

public sealed record StockReserved(string OrderId, string CustomerId, IReadOnlyList<OrderLine> Lines, decimal Total);

public sealed record StockRejected(string OrderId, string Reason);

public sealed record StockReleased(string OrderId, string Reason);

public sealed record PaymentSucceeded(string OrderId, string PaymentId, decimal Amount);

public sealed record PaymentFailed(string OrderId, decimal Amount, string Reason);

public sealed record NotificationRequested(string CustomerId, string Subject, string Body, string? OrderId);

public sealed record NotificationSent(string NotificationId, string CustomerId, string? OrderId, string Kind, string Channel);

/// <summary>Both catalog events carry the book's whole current state: the topic is compacted, so
/// the latest event per ISBN must be enough to rebuild the catalog from scratch.</summary>
public sealed record BookPriceChanged(string Isbn, string Title, decimal Price, int Available);

/// <inheritdoc cref="BookPriceChanged"/>
public sealed record BookAvailabilityChanged(string Isbn, string Title, decimal Price, int Available);
