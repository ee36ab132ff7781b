using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Notifications.Data;

namespace Bookstore.Notifications.Handlers;

public sealed class NotifyOrderReceived(EmailSender email) : IEventHandler<OrderPlaced>
{
    public Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken) =>
        Notify.SendAsync(context, email, data.CustomerId, data.OrderId, "received",
            $"We received your order {data.OrderId}", $"{data.Lines.Count} line(s), total {data.Total}. We will let you know when it is confirmed.", cancellationToken);
}

public sealed class NotifyOrderConfirmed(EmailSender email) : IEventHandler<OrderConfirmed>
{
    public Task HandleAsync(EventContext context, OrderConfirmed data, CancellationToken cancellationToken) =>
        Notify.SendAsync(context, email, data.CustomerId, data.OrderId, "confirmed",
            $"Your order {data.OrderId} is confirmed", $"Paid {data.Total}. Your books are on their way.", cancellationToken);
}

public sealed class NotifyOrderCancelled(EmailSender email) : IEventHandler<OrderCancelled>
{
    public Task HandleAsync(EventContext context, OrderCancelled data, CancellationToken cancellationToken) =>
        Notify.SendAsync(context, email, data.CustomerId, data.OrderId, "cancelled",
            $"Your order {data.OrderId} was cancelled", $"Reason: {data.Reason}. You have not been charged.", cancellationToken);
}

/// <summary>Any service may ask for an email through <c>notification-events</c>.</summary>
public sealed class SendRequestedNotification(EmailSender email) : IEventHandler<NotificationRequested>
{
    public Task HandleAsync(EventContext context, NotificationRequested data, CancellationToken cancellationToken) =>
        Notify.SendAsync(context, email, data.CustomerId, data.OrderId, $"requested:{context.Event.Id}", data.Subject, data.Body, cancellationToken);
}

internal static class Notify
{
    public static async Task SendAsync(EventContext context, EmailSender email, string customerId, string? orderId, string kind, string subject, string body, CancellationToken cancellationToken)
    {
        var notification = new Notification($"NTF-{Guid.CreateVersion7():N}", customerId, orderId, kind, subject, body, email.Channel, DateTimeOffset.UtcNow);
        if (!await NotificationStore.TryAddAsync(context.Transaction, notification))
        {
            return;
        }

        await email.SendAsync(customerId, subject, body, cancellationToken);
        await context.PublishAsync(new NotificationSent(notification.Id, customerId, orderId, kind, email.Channel));
    }
}
