namespace Bookstore.Contracts;

/// <summary>Every topic of the suite, in one table.</summary>
/// <remarks>
/// Partition counts bound parallelism: a consumer group never has more busy members than the
/// topic has partitions. The order-scoped topics have 6 so that a work queue of 3 instances shows
/// two partitions each, and a 7th instance sits idle.
/// </remarks>
public static class Topics
{
    public static readonly TopicSpec BookOrders = new("book-orders", Partitions: 6, Retention: TimeSpan.FromDays(7));

    public static readonly TopicSpec InventoryEvents = new("inventory-events", Partitions: 6, Retention: TimeSpan.FromDays(7));

    public static readonly TopicSpec PaymentResults = new("payment-results", Partitions: 6, Retention: TimeSpan.FromDays(7));

    public static readonly TopicSpec NotificationEvents = new("notification-events", Partitions: 3, Retention: TimeSpan.FromDays(7));

    /// <summary>Compacted: keyed by ISBN, the log keeps the latest state of every book for ever, so
    /// a service that starts from scratch rebuilds the whole catalog by reading it to the end.</summary>
    public static readonly TopicSpec BookCatalogUpdates = new("book-catalog-updates", Partitions: 3, Retention: TimeSpan.FromDays(7), Compacted: true);

    /// <summary>Messages a consumer gave up on, with the error and their original coordinates.
    /// Kept longer than the business topics so that someone has time to look.</summary>
    public static readonly TopicSpec DeadLetters = new("bookstore-dead-letters", Partitions: 3, Retention: TimeSpan.FromDays(14));

    /// <summary>The five topics of the course chapter.</summary>
    public static IReadOnlyList<TopicSpec> Seed { get; } =
        [BookOrders, InventoryEvents, PaymentResults, NotificationEvents, BookCatalogUpdates];

    /// <summary>Every topic the suite creates: the seed topics and the internal ones.</summary>
    public static IReadOnlyList<TopicSpec> All { get; } = [.. Seed, DeadLetters];

    public static TopicSpec Get(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"'{name}' is not a topic of the suite; known: {string.Join(", ", All.Select(t => t.Name))}.", nameof(name));
}
