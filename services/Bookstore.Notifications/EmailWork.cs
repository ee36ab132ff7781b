using Bookstore.Contracts.Events;
using Bookstore.Messaging.Work;
using System.Data.Common;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Notifications;

public sealed record EmailIntent(string NotificationId, string CustomerId, string? OrderId, string Kind, string Subject, string Body, string Channel);

/// <summary>Sends a recorded email outside any transaction (with no SMTP host configured the record
/// is the email, and this completes at once), then publishes NotificationSent. Never given up: an
/// SMTP server that is down delays emails, it does not lose them. A crash between sending and
/// recording sends the email again, as any mail system that retries does.</summary>
public sealed class EmailWork(EmailSender email, Outbox outbox) : IPendingWorkHandler
{
    public const string WorkKind = "email";

    public string Kind => WorkKind;

    public Task<bool> ShouldCallAsync(DbTransaction transaction, WorkItem item) => Task.FromResult(true);

    public async Task<object?> CallAsync(WorkItem item, CancellationToken cancellationToken)
    {
        var intent = item.Read<EmailIntent>();
        await email.SendAsync(intent.CustomerId, intent.Subject, intent.Body, cancellationToken);
        return null;
    }

    public async Task CompleteAsync(DbTransaction transaction, WorkItem item, object? result)
    {
        var intent = item.Read<EmailIntent>();
        await outbox.AddAsync(transaction, new NotificationSent(intent.NotificationId, intent.CustomerId, intent.OrderId, intent.Kind, intent.Channel));
    }

    public Task<bool> GiveUpAsync(DbTransaction transaction, WorkItem item, string lastError) => Task.FromResult(false);
}
