using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Work;
using Bookstore.Notifications.Data;

namespace Bookstore.Notifications.Handlers;

public sealed class NotifyOrderReceived(EmailSender email, PendingWorkSignal work) : IEventHandler<OrderPlaced>
{
    public Task HandleAsync(EventContext context, OrderPlaced data, CancellationToken cancellationToken) =>
        Notify.RecordAsync(context, email, work, data.CustomerId, data.OrderId, "received",
            $"We received your order {data.OrderId}", $"{data.Lines.Count} line(s), total {data.Total}. We will let you know when it is confirmed.");
}

public sealed class NotifyOrderConfirmed(EmailSender email, PendingWorkSignal work) : IEventHandler<OrderConfirmed>
{
    public Task HandleAsync(EventContext context, OrderConfirmed data, CancellationToken cancellationToken) =>
        Notify.RecordAsync(context, email, work, data.CustomerId, data.OrderId, "confirmed",
            $"Your order {data.OrderId} is confirmed", $"Paid {data.Total}. Your books are on their way.");
}

public sealed class NotifyOrderCancelled(EmailSender email, PendingWorkSignal work) : IEventHandler<OrderCancelled>
{
    public Task HandleAsync(EventContext context, OrderCancelled data, CancellationToken cancellationToken) =>
        Notify.RecordAsync(context, email, work, data.CustomerId, data.OrderId, "cancelled",
            $"Your order {data.OrderId} was cancelled", $"Reason: {data.Reason}. You have not been charged.");
}

/// <summary>Any service may ask for an email through <c>notification-events</c>.</summary>
public sealed class SendRequestedNotification(EmailSender email, PendingWorkSignal work) : IEventHandler<NotificationRequested>
{
    public Task HandleAsync(EventContext context, NotificationRequested data, CancellationToken cancellationToken) =>
        Notify.RecordAsync(context, email, work, data.CustomerId, data.OrderId, $"requested:{context.Event.Id}", data.Subject, data.Body);
}

/// <summary>Records the email and the intent to send it, in the batch's transaction; <see cref="EmailWork"/>
/// sends it outside the transaction, then publishes NotificationSent.</summary>
internal static class Notify
{
    public static async Task RecordAsync(EventContext context, EmailSender email, PendingWorkSignal work, string customerId, string? orderId, string kind, string subject, string body)
    {
        // The id arrives in an event from Kafka, which anyone with access may write: an id that could
        // add a header or a recipient is dead-lettered here (no retry helps), never recorded or sent.
        if (!CustomerIds.IsValid(customerId))
        {
            throw new PoisonMessageException($"The customer id is not {CustomerIds.Rule}; no email address is built from it.");
        }

        var notification = new Notification($"NTF-{Guid.CreateVersion7():N}", customerId, orderId, kind, subject, body, email.Channel, DateTimeOffset.UtcNow);
        if (!await NotificationStore.TryAddAsync(context.Transaction, notification))
        {
            return;
        }

        await PendingWork.AddAsync(context.Transaction, EmailWork.WorkKind, notification.Id, new EmailIntent(notification.Id, customerId, orderId, kind, subject, body, email.Channel));
        context.AfterCommit(work.Notify);
    }
}
