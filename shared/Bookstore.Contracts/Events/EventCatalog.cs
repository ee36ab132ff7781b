namespace Bookstore.Contracts.Events;

/// <summary>One event type of the suite: its CloudEvents type name, the topic it lives on and
/// the key it is published with.</summary>
public abstract record EventDefinition(string TypeName, Type ClrType, TopicSpec Topic)
{
    public abstract string KeyOf(object data);

    /// <summary>CloudEvents' <c>subject</c>: the entity the event is about (the key, too).</summary>
    public string SubjectOf(object data) => KeyOf(data);
}

public sealed record EventDefinition<T>(string TypeName, TopicSpec Topic, Func<T, string> Key) : EventDefinition(TypeName, typeof(T), Topic)
    where T : class
{
    public override string KeyOf(object data) => Key((T)data);
}

/// <summary>The registry pairing every event with its topic and key.</summary>
/// <remarks>
/// Keys decide partitions, and a partition is the unit of ordering. Order-scoped events are keyed
/// by order id: every event of one order lands on the same partition of its topic, so a consumer
/// sees an order's events in the order they were written (placed before confirmed) while
/// different orders spread over the partitions and instances. Catalog events are keyed by ISBN:
/// a book's updates stay in order, and compaction keeps exactly the latest one per book.
/// </remarks>
public static class EventCatalog
{
    public static readonly EventDefinition<OrderPlaced> OrderPlaced = new("bookstore.order.placed.v1", Topics.BookOrders, e => e.OrderId);
    public static readonly EventDefinition<OrderConfirmed> OrderConfirmed = new("bookstore.order.confirmed.v1", Topics.BookOrders, e => e.OrderId);
    public static readonly EventDefinition<OrderCancelled> OrderCancelled = new("bookstore.order.cancelled.v1", Topics.BookOrders, e => e.OrderId);
    public static readonly EventDefinition<StockReserved> StockReserved = new("bookstore.stock.reserved.v1", Topics.InventoryEvents, e => e.OrderId);
    public static readonly EventDefinition<StockRejected> StockRejected = new("bookstore.stock.rejected.v1", Topics.InventoryEvents, e => e.OrderId);
    public static readonly EventDefinition<StockReleased> StockReleased = new("bookstore.stock.released.v1", Topics.InventoryEvents, e => e.OrderId);
    public static readonly EventDefinition<PaymentSucceeded> PaymentSucceeded = new("bookstore.payment.succeeded.v1", Topics.PaymentResults, e => e.OrderId);
    public static readonly EventDefinition<PaymentFailed> PaymentFailed = new("bookstore.payment.failed.v1", Topics.PaymentResults, e => e.OrderId);
    public static readonly EventDefinition<NotificationRequested> NotificationRequested = new("bookstore.notification.requested.v1", Topics.NotificationEvents, e => e.OrderId ?? e.CustomerId);
    public static readonly EventDefinition<NotificationSent> NotificationSent = new("bookstore.notification.sent.v1", Topics.NotificationEvents, e => e.OrderId ?? e.CustomerId);
    public static readonly EventDefinition<BookPriceChanged> BookPriceChanged = new("bookstore.catalog.price-changed.v1", Topics.BookCatalogUpdates, e => e.Isbn);
    public static readonly EventDefinition<BookAvailabilityChanged> BookAvailabilityChanged = new("bookstore.catalog.availability-changed.v1", Topics.BookCatalogUpdates, e => e.Isbn);

    public static IReadOnlyList<EventDefinition> All { get; } =
    [
        OrderPlaced, OrderConfirmed, OrderCancelled,
        StockReserved, StockRejected, StockReleased,
        PaymentSucceeded, PaymentFailed,
        NotificationRequested, NotificationSent,
        BookPriceChanged, BookAvailabilityChanged,
    ];

    private static readonly Dictionary<string, EventDefinition> ByTypeName = All.ToDictionary(d => d.TypeName);
    private static readonly Dictionary<Type, EventDefinition> ByClrType = All.ToDictionary(d => d.ClrType);

    public static EventDefinition? Find(string typeName) => ByTypeName.GetValueOrDefault(typeName);

    public static EventDefinition For(Type clrType) =>
        ByClrType.GetValueOrDefault(clrType) ?? throw new ArgumentException($"{clrType.Name} is not an event of the catalog.", nameof(clrType));

    public static EventDefinition<T> For<T>()
        where T : class => (EventDefinition<T>)For(typeof(T));
}
