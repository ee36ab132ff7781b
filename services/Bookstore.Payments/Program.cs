using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Payments;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;
using Bookstore.Payments.Handlers;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5300");
var messaging = builder.AddMessaging(ConsumerGroups.Payments, PaymentStore.Schema, consumers => consumers
    .Handle<StockReserved, ChargeOrder>()
    .Handle<OrderCancelled, RefundCancelledOrder>());
builder.Services.AddSingleton(new SimulatedGateway(
    Path.ChangeExtension(messaging.DatabasePath, ".gateway.db"),
    builder.Configuration.GetSection("Gateway").Get<GatewaySettings>() ?? new GatewaySettings()));
builder.Services.AddSingleton<ResilientGateway>();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapPaymentsApi();
app.Run();
return 0;
