using System.Buffers;
using Bookstore.Messaging.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Bookstore.Analytics.Journeys;

/// <summary>The journeys of the orders placed in [<see cref="From"/>, <see cref="To"/>).</summary>
/// <param name="OrdersPlaced">Orders whose OrderPlaced was written in the window.</param>
/// <param name="OrdersSampled">Of those, the ones whose journeys were read: all of them up to the
/// limit, else as many spread evenly over the window.</param>
public sealed record JourneyBreakdownReport(DateTimeOffset From, DateTimeOffset To, int OrdersPlaced, int OrdersSampled, JourneyBreakdown Breakdown);

public static class JourneyApi
{
    /// <summary>Journeys read for one breakdown at most, ≈ 6 rows each.</summary>
    public const int MaxSampledOrders = 10_000;

    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(1);

    private const int MaxOrderIdLength = 128;

    private static readonly SearchValues<char> OrderIdCharacters = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");

    public static IEndpointRouteBuilder MapJourneyApi(this IEndpointRouteBuilder app)
    {
        var analytics = app.MapGroup("/analytics").WithTags("Journeys");
        analytics.MapGet("/orders/{id}/journey", GetJourney)
            .WithSummary("An order's hops in time order: who handled which event, where it was read, and how long each step took");
        analytics.MapGet("/journeys/breakdown", GetBreakdown)
            .WithSummary("Per kind of hop and step, p50/p90/p99 across the journeys of the orders placed in [from, to)");
        return app;
    }

    private static async Task<Results<Ok<OrderJourney>, ValidationProblem, ProblemHttpResult>> GetJourney(string id, ServiceDatabase database, CancellationToken cancellationToken)
    {
        if (id.Length > MaxOrderIdLength || id.AsSpan().ContainsAnyExcept(OrderIdCharacters))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["id"] = [$"An order id is 1 to {MaxOrderIdLength} letters, digits, '-', '_' or '.'."] });
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        return OrderJourney.Of(id, await JourneyStore.EventsOfAsync(connection, id)) is { } journey
            ? TypedResults.Ok(journey)
            : TypedResults.Problem(
                statusCode: StatusCodes.Status404NotFound,
                title: "Unknown order",
                detail: $"No event of order {id} is recorded: it is unknown, not read yet, or its events were folded into the roll-ups.");
    }

    private static async Task<Results<Ok<JourneyBreakdownReport>, ValidationProblem>> GetBreakdown(
        DateTimeOffset from, DateTimeOffset to, int? limit, ServiceDatabase database, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (to <= from)
        {
            errors["to"] = ["Later than from."];
        }
        else if (to - from > MaxWindow)
        {
            errors["to"] = [$"At most {MaxWindow.TotalHours} h after from."];
        }

        if (limit is < 1 or > MaxSampledOrders)
        {
            errors["limit"] = [$"Between 1 and {MaxSampledOrders}."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        var (placed, sample) = await JourneyStore.OrdersPlacedAsync(connection, from, to, limit ?? MaxSampledOrders);
        // A chunk of orders at a time (JourneyStore.OrdersPerRead): the events of ten thousand orders would take a hundred MB.
        var tally = new JourneyBreakdown.Tally();
        foreach (var orders in sample.Chunk(JourneyStore.OrdersPerRead))
        {
            foreach (var events in (await JourneyStore.EventsOfAsync(connection, orders)).GroupBy(e => e.OrderId))
            {
                tally.Add(OrderJourney.Of(events.Key, events)!);
            }
        }

        return TypedResults.Ok(new JourneyBreakdownReport(from, to, placed, sample.Count, tally.Breakdown()));
    }
}
