using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Inventory;
using Bookstore.Inventory.Data;
using Bookstore.Inventory.Handlers;
using Bookstore.Messaging;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5200");
builder.AddMessaging(ConsumerGroups.Inventory, InventoryStore.Schema, consumers => consumers
    .Handle<OrderPlaced, ReserveStock>()
    .Handle<PaymentSucceeded, ConsumeReservation>()
    .Handle<PaymentFailed, ReleaseOnPaymentFailure>()
    .Handle<OrderCancelled, ReleaseOnCancellation>());
builder.Services.AddSingleton<CatalogPublisher>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<CatalogPublisher>());
builder.Services.AddHealthChecks().AddCheck<CatalogPublisher>("catalog");

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapInventoryApi();
app.Run();
return 0;
