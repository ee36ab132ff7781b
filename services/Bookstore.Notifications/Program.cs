using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Work;
using Bookstore.Notifications;
using Bookstore.Notifications.Data;
using Bookstore.Notifications.Handlers;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5400");
builder.AddMessaging(ConsumerGroups.Notifications, NotificationStore.Schema + PendingWork.Schema, consumers => consumers
    .Handle<OrderPlaced, NotifyOrderReceived>()
    .Handle<OrderConfirmed, NotifyOrderConfirmed>()
    .Handle<OrderCancelled, NotifyOrderCancelled>()
    .Handle<NotificationRequested, SendRequestedNotification>());
builder.Services.AddSingleton(new EmailSender(builder.Configuration.GetSection("Smtp").Get<SmtpOptions>() ?? new SmtpOptions()));
// Handlers only record emails; the worker sends them outside any transaction (Notifications:RetryDelay, …).
builder.Services.AddPendingWork(builder.Configuration.GetSection("Notifications").Get<PendingWorkOptions>() ?? new PendingWorkOptions());
builder.Services.AddSingleton<IPendingWorkHandler, EmailWork>();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapGet("/notifications", async (string? customerId, string? orderId, ServiceDatabase database, CancellationToken ct) =>
{
    await using var connection = await database.OpenAsync(ct);
    return TypedResults.Ok(await NotificationStore.FindAsync(connection, customerId, orderId));
}).WithTags("Notifications").WithSummary("Emails sent, by customer and/or order");
app.Run();
return 0;
