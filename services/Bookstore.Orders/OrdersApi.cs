using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Storage;
using Bookstore.Orders.Data;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Orders;

public sealed record PlaceOrderRequest(string? CustomerId, List<PlaceOrderLine>? Lines);

public sealed record PlaceOrderLine(string? Isbn, int Quantity);

public static class OrdersApi
{
    public const int MaxLines = 50;
    public const int MaxQuantity = 100;

    public static IEndpointRouteBuilder MapOrdersApi(this IEndpointRouteBuilder app)
    {
        // The collection's own routes outside the group: a group's "" route is "/orders/", which
        // would name the request span and the OpenAPI path with a trailing slash.
        app.MapPost("/orders", PlaceOrder).WithTags("Orders").WithSummary("Place an order; 202 once it is stored and its OrderPlaced event is in the outbox");
        app.MapGet("/orders", ListOrders).WithTags("Orders").WithSummary("A customer's orders, newest first");
        var orders = app.MapGroup("/orders").WithTags("Orders");
        orders.MapGet("/{id}", GetOrder).WithSummary("An order with its status and history");
        orders.MapGet("/stats", GetStats).WithSummary("How many orders were placed, confirmed, cancelled; the revenue");
        return app;
    }

    private static async Task<Results<Accepted<Order>, ValidationProblem, ProblemHttpResult>> PlaceOrder(
        PlaceOrderRequest request,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        HttpContext http,
        ServiceDatabase database,
        Outbox outbox,
        OrderMetrics metrics,
        CancellationToken cancellationToken)
    {
        if (Validate(request, idempotencyKey) is { Count: > 0 } errors)
        {
            return TypedResults.ValidationProblem(errors);
        }

        // Prices come from the catalog view; reading it needs no write lock.
        var lines = request.Lines!;
        Dictionary<string, CatalogEntry> catalog;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            catalog = await OrderStore.CatalogAsync(connection, lines.Select(l => l.Isbn!));
        }

        var unknown = lines.Select((l, i) => (l.Isbn, i)).Where(x => !catalog.ContainsKey(x.Isbn!)).ToList();
        if (unknown.Count > 0)
        {
            return TypedResults.ValidationProblem(unknown.ToDictionary(x => $"lines[{x.i}].isbn", x => new[] { $"No book has ISBN {x.Isbn}." }));
        }

        var now = DateTimeOffset.UtcNow;
        var orderLines = lines.Select(l => new OrderLine(l.Isbn!, l.Quantity, catalog[l.Isbn!].Price)).ToList();
        var order = new Order($"ORD-{Guid.CreateVersion7():N}", request.CustomerId!, OrderStatus.Pending, null, orderLines, orderLines.Sum(l => l.Amount), now, now, []);
        var requestHash = Hash(request);

        // The idempotency check and the insert share one transaction: two retries of one request
        // cannot both create an order. Keys are the customer's own: another customer who happens to
        // send the same key places an order of their own and learns nothing about this one.
        var (placed, earlier) = await database.WriteAsync(
            async transaction =>
            {
                if (idempotencyKey is not null && await OrderStore.IdempotencyKeyAsync(transaction, order.CustomerId, idempotencyKey) is { } earlier)
                {
                    return ((Order?)null, earlier);
                }

                var placed = await OrderStore.InsertAsync(transaction, order);
                if (idempotencyKey is not null)
                {
                    await OrderStore.AddIdempotencyKeyAsync(transaction, order.CustomerId, idempotencyKey, order.Id, requestHash);
                }

                await outbox.AddAsync(transaction, new OrderPlaced(order.Id, order.CustomerId, order.Lines, order.Total));
                return (placed, (IdempotencyRecord?)null);
            },
            cancellationToken);

        if (placed is not null)
        {
            outbox.Committed();
            metrics.Placed();
            return TypedResults.Accepted($"/orders/{placed.Id}", placed);
        }

        // 422 as the IETF Idempotency-Key draft answers a key reused for another payload; the answer
        // names neither the first order nor what it held.
        if (earlier!.RequestHash != requestHash)
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status422UnprocessableEntity,
                title: "Idempotency key reused",
                detail: "This Idempotency-Key was already used for a different order request; send a new key for a new order.");
        }

        http.Response.Headers["Idempotent-Replayed"] = "true";
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            var first = (await OrderStore.GetAsync(connection, earlier.OrderId))!;
            return TypedResults.Accepted($"/orders/{first.Id}", first);
        }
    }

    private static async Task<Results<Ok<Order>, ProblemHttpResult>> GetOrder(string id, ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await OrderStore.GetAsync(connection, id) is { } order
            ? TypedResults.Ok(order)
            : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown order", detail: $"There is no order {id}.");
    }

    private static async Task<Results<Ok<List<Order>>, ValidationProblem>> ListOrders(string? customerId, ServiceDatabase database, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(customerId))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["customerId"] = ["Give ?customerId=…"] });
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await OrderStore.ByCustomerAsync(connection, customerId));
    }

    private static async Task<Ok<OrderStats>> GetStats(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await OrderStore.StatsAsync(connection));
    }

    private static Dictionary<string, string[]> Validate(PlaceOrderRequest request, string? idempotencyKey)
    {
        var errors = new Dictionary<string, string[]>();
        // The id ends up in an email address: nothing that could add a header or a recipient passes.
        if (!CustomerIds.IsValid(request.CustomerId))
        {
            errors["customerId"] = [$"A customer id is {CustomerIds.Rule}."];
        }

        if (idempotencyKey is not null && (idempotencyKey.Length is 0 or > 200))
        {
            errors["Idempotency-Key"] = ["An idempotency key has 1 to 200 characters."];
        }

        if (request.Lines is not { Count: > 0 and <= MaxLines })
        {
            errors["lines"] = [$"An order has 1 to {MaxLines} lines."];
            return errors;
        }

        for (var i = 0; i < request.Lines.Count; i++)
        {
            var line = request.Lines[i];
            if (line is null || string.IsNullOrWhiteSpace(line.Isbn) || line.Isbn.Length > 20)
            {
                errors[$"lines[{i}].isbn"] = ["An ISBN is required."];
            }

            if (line is null || line.Quantity is < 1 or > MaxQuantity)
            {
                errors[$"lines[{i}].quantity"] = [$"The quantity is between 1 and {MaxQuantity}."];
            }
        }

        foreach (var duplicate in request.Lines.Where(l => l?.Isbn is not null).GroupBy(l => l.Isbn).Where(g => g.Count() > 1))
        {
            errors[$"lines"] = [$"ISBN {duplicate.Key} appears on more than one line; give it once with the total quantity."];
        }

        return errors;
    }

    private static string Hash(PlaceOrderRequest request) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(request))));
}
