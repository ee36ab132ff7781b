using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Work;
using Bookstore.Payments;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;
using Bookstore.Payments.Handlers;
using Bookstore.Payments.Work;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5300");
var messaging = builder.AddMessaging(ConsumerGroups.Payments, PaymentStore.Schema + PendingWork.Schema, consumers => consumers
    .Handle<StockReserved, ChargeOrder>()
    .Handle<OrderCancelled, RefundCancelledOrder>());
// The gateway's ledger is its own database: beside the service's file, or ConnectionStrings:GatewayPostgres.
var ledger = builder.Configuration.GetConnectionString("GatewayPostgres");
if (messaging.PostgresConnectionString is not null && ledger is null)
{
    throw new InvalidOperationException(
        "The Payment Service runs on PostgreSQL but its gateway's ledger has no database: set ConnectionStrings:GatewayPostgres. A ledger file per host would let two instances charge one order twice.");
}

builder.Services.AddSingleton(_ => new SimulatedGateway(
    ServiceDatabase.Open(ledger, Path.ChangeExtension(messaging.DatabasePath, ".gateway.db"), SimulatedGateway.Schema),
    builder.Configuration.GetSection("Gateway").Get<GatewaySettings>()));
builder.Services.AddSingleton<ResilientGateway>();
// Handlers only record charges and refunds; the worker calls the gateway outside any transaction.
var payments = builder.Configuration.GetSection(PaymentOptions.Section);
builder.Services.AddSingleton(payments.Get<PaymentOptions>() ?? new PaymentOptions());
builder.Services.AddPendingWork(payments.Get<PendingWorkOptions>() ?? new PendingWorkOptions());
builder.Services.AddSingleton<IPendingWorkHandler, ChargeWork>();
builder.Services.AddSingleton<IPendingWorkHandler, RefundWork>();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapPaymentsApi();
app.Run();
return 0;
