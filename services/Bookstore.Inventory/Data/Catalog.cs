namespace Bookstore.Inventory.Data;

/// <summary>The books the store starts with (when its database is new).</summary>
public static class Catalog
{
    public static IReadOnlyList<Book> Seed { get; } =
    [
        new("978-0-13-468599-1", "The Pragmatic Programmer", "David Thomas, Andrew Hunt", 42.50m, 200, 0),
        new("978-0-13-235088-4", "Clean Code", "Robert C. Martin", 37.99m, 200, 0),
        new("978-1-4919-3616-3", "Designing Data-Intensive Applications", "Martin Kleppmann", 49.90m, 200, 0),
        new("978-1-4920-4346-3", "Kafka: The Definitive Guide", "Gwen Shapira et al.", 54.00m, 200, 0),
        new("978-0-321-12521-7", "Domain-Driven Design", "Eric Evans", 59.95m, 150, 0),
        new("978-0-201-63361-0", "Design Patterns", "Gamma, Helm, Johnson, Vlissides", 47.00m, 150, 0),
        new("978-0-13-475759-9", "Refactoring", "Martin Fowler", 44.99m, 150, 0),
        new("978-1-61729-453-5", "Microservices Patterns", "Chris Richardson", 46.00m, 150, 0),
        new("978-1-4920-3402-4", "Building Event-Driven Microservices", "Adam Bellemare", 51.00m, 150, 0),
        new("978-0-321-83457-7", "Release It!", "Michael T. Nygard", 39.95m, 150, 0),
        new("978-1-4919-5035-0", "Site Reliability Engineering", "Beyer, Jones, Petoff, Murphy", 44.00m, 100, 0),
        new("978-0-596-52068-7", "Enterprise Integration Patterns", "Gregor Hohpe, Bobby Woolf", 64.99m, 100, 0),
        new("978-0-13-449416-6", "Clean Architecture", "Robert C. Martin", 34.99m, 100, 0),
        new("978-1-59327-584-6", "The Linux Programming Interface", "Michael Kerrisk", 89.95m, 100, 0),
        new("978-0-262-03384-8", "Introduction to Algorithms", "Cormen, Leiserson, Rivest, Stein", 99.00m, 100, 0),
        new("978-0-13-110362-7", "The C Programming Language", "Kernighan, Ritchie", 55.00m, 100, 0),
        new("978-1-4493-7332-0", "Learning Spark", "Karau, Konwinski, Wendell, Zaharia", 39.99m, 80, 0),
        new("978-1-61729-730-7", "Kafka Streams in Action", "William P. Bejeck Jr.", 49.99m, 80, 0),
        new("978-1-4919-8436-2", "Fundamentals of Software Architecture", "Mark Richards, Neal Ford", 52.00m, 80, 0),
        new("978-0-321-60191-9", "Continuous Delivery", "Jez Humble, David Farley", 49.99m, 80, 0),
        new("978-1-942788-29-4", "Accelerate", "Forsgren, Humble, Kim", 29.95m, 60, 0),
        new("978-0-201-83595-3", "The Mythical Man-Month", "Frederick P. Brooks Jr.", 32.00m, 60, 0),
        // Scarce on purpose: orders for these run out, and the saga cancels them.
        new("978-0-00-000001-1", "A Rare First Edition", "Anonymous", 250.00m, 5, 0),
        new("978-0-00-000002-8", "The Last Copy", "Anonymous", 120.00m, 2, 0),
    ];
}
