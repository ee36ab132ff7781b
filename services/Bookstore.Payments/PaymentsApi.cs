using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Work;
using Bookstore.Payments.Data;
using Bookstore.Payments.Gateway;
using Bookstore.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Bookstore.Payments;

public static class PaymentsApi
{
    public static IEndpointRouteBuilder MapPaymentsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/payments/{orderId}", GetPayment).WithTags("Payments").WithSummary("The payment of an order");
        // The whole group: its settings say how to make payments fail, which is nobody else's business.
        var admin = app.MapGroup("/admin/gateway").WithTags("Admin").RequireAdminKey();
        admin.MapGet("/", async (SimulatedGateway gateway, CancellationToken cancellationToken) => TypedResults.Ok(await gateway.SettingsAsync(cancellationToken)))
            .WithSummary("The simulated gateway's failure rate and latency");
        admin.MapPut("/", SetGateway).WithSummary("Change the simulated gateway's failure rate (0..1) and latency (ms) at run time, for every instance");
        admin.MapGet("/ledger", async (SimulatedGateway gateway, CancellationToken cancellationToken) => TypedResults.Ok(await gateway.LedgerAsync(cancellationToken)))
            .WithSummary("Every charge the simulated gateway made, one per order, and whether it was refunded");
        app.MapGet("/admin/pending-work", ListPendingWork).WithTags("Admin").RequireAdminKey().WithSummary("Charges and refunds not made yet: attempts, next attempt, last error");
        return app;
    }

    private static async Task<Ok<List<PendingWorkView>>> ListPendingWork(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await PendingWork.ListAsync(connection));
    }

    private static async Task<Results<Ok<Payment>, ProblemHttpResult>> GetPayment(string orderId, ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await PaymentStore.GetAsync(connection, orderId) is { } payment
            ? TypedResults.Ok(payment)
            : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No payment", detail: $"Order {orderId} has no payment (yet).");
    }

    private static async Task<Results<Ok<GatewaySettings>, ValidationProblem>> SetGateway(GatewaySettings settings, SimulatedGateway gateway, CancellationToken cancellationToken)
    {
        if (!settings.IsValid)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["failureRate"] = ["Between 0 and 1."],
                ["latencyMs"] = ["Between 0 and 10000."],
            });
        }

        await gateway.UpdateSettingsAsync(settings, cancellationToken);
        return TypedResults.Ok(settings);
    }
}
