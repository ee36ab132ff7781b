using System.Net.Http.Json;
using System.Text.Json;
using Bookstore.Analytics.Data;
using Bookstore.Messaging.Storage;
using Bookstore.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.FileProviders;

namespace Bookstore.Analytics.Dashboard;

public sealed record DashboardState(
    ClusterView Cluster,
    Funnel Funnel,
    IReadOnlyList<TailEvent> Tail,
    IReadOnlyList<TopicThroughput> Throughput,
    BurstProgress? Burst,
    ProblemsView Problems);

public sealed record DemoOrderRequest(string? Isbn, int Quantity = 1, string? CustomerId = null);

public sealed record BurstRequest(int Orders);

public static class DashboardApi
{
    public const int MaxBurst = 5_000;

    /// <summary>The page and its data: the Order Service is reached through this service, so the
    /// page needs one origin only.</summary>
    public static WebApplicationBuilder AddDashboard(this WebApplicationBuilder builder)
    {
        var ordersUrl = builder.Configuration["Dashboard:OrdersUrl"] ?? "http://127.0.0.1:5100";
        builder.Services.AddHttpClient(OrderBurst.OrdersClient, client =>
        {
            client.BaseAddress = new Uri(ordersUrl);
            client.Timeout = TimeSpan.FromSeconds(30);
        });
        builder.Services.AddSingleton<EventTail>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EventTail>());
        builder.Services.AddSingleton<ClusterWatcher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ClusterWatcher>());
        builder.Services.AddSingleton<OrderBurst>();
        return builder;
    }

    public static WebApplication MapDashboard(this WebApplication app)
    {
        // Embedded in the assembly: the page runs from the build output as it is, no build step.
        var page = new EmbeddedFileProvider(typeof(DashboardApi).Assembly, "Bookstore.Analytics.Dashboard.Page");
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = page });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = page });

        var dashboard = app.MapGroup("/dashboard").WithTags("Dashboard");
        dashboard.MapGet("/state", GetState).WithSummary("Brokers, topics, groups, rebalances, the funnel, the live tail and throughput");
        dashboard.MapGet("/books", GetBooks).WithSummary("The catalog as read from book-catalog-updates");
        // One order is what any customer may place; a burst of thousands is bulk, so it takes the admin key.
        dashboard.MapPost("/orders", PlaceOrder).WithSummary("Place one order through the Order Service");
        dashboard.MapPost("/burst", StartBurst).RequireAdminKey().WithSummary("Place N orders through the Order Service, in the background (admin key)");
        return app;
    }

    private static async Task<Ok<DashboardState>> GetState(ServiceDatabase database, ClusterWatcher watcher, EventTail tail, OrderBurst burst, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(new DashboardState(watcher.Watch(), await AnalyticsStore.FunnelAsync(connection), tail.Recent(), tail.Throughput(), burst.Progress, tail.Problems()));
    }

    private static async Task<Ok<IReadOnlyList<Book>>> GetBooks(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await AnalyticsStore.BooksAsync(connection));
    }

    /// <summary>Passes the Order Service's answer on as it is: 202 with the order, or its problem details.</summary>
    private static async Task<IResult> PlaceOrder(DemoOrderRequest request, IHttpClientFactory clients, CancellationToken cancellationToken)
    {
        var customerId = string.IsNullOrWhiteSpace(request.CustomerId) ? "dashboard" : request.CustomerId;
        try
        {
            using var response = await OrderBurst.PlaceAsync(clients.CreateClient(OrderBurst.OrdersClient), customerId, request.Isbn, request.Quantity, cancellationToken);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
            return Results.Json(body, statusCode: (int)response.StatusCode, contentType: response.Content.Headers.ContentType?.MediaType);
        }
        catch (Exception e) when (e is HttpRequestException or JsonException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status502BadGateway, title: "The Order Service did not answer", detail: e.Message);
        }
    }

    private static async Task<Results<Accepted<BurstProgress>, ValidationProblem, ProblemHttpResult>> StartBurst(BurstRequest request, OrderBurst burst, ServiceDatabase database, CancellationToken cancellationToken)
    {
        if (request.Orders is < 1 or > MaxBurst)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["orders"] = [$"Between 1 and {MaxBurst}."] });
        }

        IReadOnlyList<Book> books;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            books = await AnalyticsStore.BooksAsync(connection);
        }

        if (books.Count == 0)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "No catalog yet", detail: "No book has been read from book-catalog-updates yet.");
        }

        return burst.TryStart(request.Orders, [.. books.Select(b => b.Isbn)]) is { } progress
            ? TypedResults.Accepted("/dashboard/state", progress)
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A burst is running", detail: "Try again when it has finished.");
    }
}
