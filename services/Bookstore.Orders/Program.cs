using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Orders;
using Bookstore.Orders.Data;
using Bookstore.Orders.Handlers;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5100");
builder.AddMessaging(ConsumerGroups.Orders, OrderStore.Schema, consumers => consumers
    .Handle<StockReserved, RecordStockReserved>()
    .Handle<StockRejected, CancelOnStockRejection>()
    .Handle<StockReleased, RecordStockReleased>()
    .Handle<PaymentSucceeded, ConfirmOnPayment>()
    .Handle<PaymentFailed, CancelOnPaymentFailure>()
    .Handle<BookPriceChanged, UpdateCatalogPrice>()
    .Handle<BookAvailabilityChanged, UpdateCatalogAvailability>()
    .Prune<OrderHistoryPruneStep>()
    .Prune<IdempotencyKeysPruneStep>());
builder.Services.AddSingleton(builder.Configuration.GetSection("Orders").Get<OrderOptions>() ?? new OrderOptions());
builder.Services.AddSingleton<OrderMetrics>();
builder.Services.AddHostedService<PendingOrderTimeout>();
builder.Services.AddSingleton<CatalogReadiness>();
builder.Services.AddHealthChecks().AddCheck<CatalogReadiness>("catalog");

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapOrdersApi();
app.Run();
return 0;
