using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Work;
using Bookstore.Notifications;
using Bookstore.Notifications.Data;
using Bookstore.Notifications.Handlers;
using Bookstore.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;

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
    .Handle<NotificationRequested, SendRequestedNotification>()
    .Prune<NotificationsPruneStep>());
builder.Services.AddSingleton(new EmailSender(builder.Configuration.GetSection("Smtp").Get<SmtpOptions>() ?? new SmtpOptions()));
// Handlers only record emails; the worker sends them outside any transaction (Notifications:RetryDelay, …).
builder.Services.AddPendingWork(builder.Configuration.GetSection("Notifications").Get<PendingWorkOptions>() ?? new PendingWorkOptions());
builder.Services.AddSingleton<IPendingWorkHandler, EmailWork>();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapGet("/notifications", FindNotifications)
    .WithTags("Notifications")
    .WithSummary("Emails sent, by customer and/or order; every customer's only with the admin key")
    .ProducesProblem(StatusCodes.Status401Unauthorized)
    .ProducesProblem(StatusCodes.Status403Forbidden);
app.Run();
return 0;

// One customer's (or one order's) emails, as GET /orders?customerId= shows one customer's orders;
// the list of every customer's emails is an operator's view and takes the admin key.
static async Task<Results<Ok<List<Notification>>, ValidationProblem, ProblemHttpResult>> FindNotifications(
    string? customerId, string? orderId, HttpContext http, ServiceDatabase database, CancellationToken ct)
{
    var unfiltered = string.IsNullOrEmpty(customerId) && string.IsNullOrEmpty(orderId);
    if (unfiltered && !http.Request.Headers.ContainsKey(AdminKey.HeaderName))
    {
        return TypedResults.ValidationProblem(new Dictionary<string, string[]>
        {
            ["customerId"] = [$"Give ?customerId= or ?orderId= (every customer's notifications need the admin key in {AdminKey.HeaderName})."],
        });
    }

    if (unfiltered && AdminKey.Refusal(http) is { } refusal)
    {
        return refusal;
    }

    await using var connection = await database.OpenAsync(ct);
    return TypedResults.Ok(await NotificationStore.FindAsync(connection, customerId, orderId));
}
