namespace Bookstore.Contracts;

/// <summary>One consumer group per service: between services every group gets every event
/// (publish/subscribe); between instances of one service the group splits the partitions (work queue).</summary>
public static class ConsumerGroups
{
    public const string Orders = "order-service";
    public const string Inventory = "inventory-service";
    public const string Payments = "payment-service";
    public const string Notifications = "notification-service";
    public const string Analytics = "analytics-service";

    public static IReadOnlyList<string> All { get; } = [Orders, Inventory, Payments, Notifications, Analytics];
}
