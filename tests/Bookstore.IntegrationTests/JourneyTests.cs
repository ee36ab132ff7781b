using System.Net;
using System.Net.Http.Json;
using System.Text;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests;

/// <summary>An order's journey as Analytics tells it (<c>GET /analytics/orders/{id}/journey</c>),
/// from the timestamps the five services, running as processes on the real cluster, put into the
/// order's events: every boundary recorded when it happened, the path's steps adding up to the
/// order's placed → terminal time.</summary>
public abstract class JourneyTests(KafkaClusterFixture fixture, StorageBackend backend)
{
    private const string Isbn = "978-1-4920-4346-3";

    /// <summary>How far a path's sum may be from placed → terminal: the steps are rounded to the microsecond.</summary>
    private const double ToleranceMs = 2;

    [Fact]
    public async Task An_orders_journey_lists_its_hops_and_the_paths_steps_add_up_to_placed_to_terminal()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "journey");
        var id = await PlaceAsync(suite);

        JourneyView? journey = null;
        var complete = await Poll.UntilAsync(
            async ct =>
            {
                using var response = await suite.Analytics.GetAsync(new Uri($"/analytics/orders/{id}/journey", UriKind.Relative), ct);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    return false; // Analytics has not read the order's first event yet
                }

                journey = await response.Content.ReadFromJsonAsync<JourneyView>(ct);
                return journey is { Terminal: not null, Hops.Count: >= 4 } && journey.Hops.Count(h => !h.OnCriticalPath) >= 2;
            },
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(250));
        Assert.True(complete, $"{id}: a terminal journey of at least four hops, two of them emails, within {TestClients.Deadline}; last seen: {Describe(journey)}");

        Assert.Equal("Confirmed", (await suite.Orders.GetFromJsonAsync<OrderStatusView>($"/orders/{id}"))!.Status);
        // The journey's rows travel in the facts' command: the facts are recorded all the same.
        var summary = (await suite.Analytics.GetFromJsonAsync<SummaryView>("/analytics/summary"))!;
        Assert.Equal((1L, 1L), (summary.OrdersPlaced, summary.OrdersConfirmed));
        Assert.True(journey!.PathComplete, $"path complete: {journey.PathGap}");
        Assert.Matches("^[0-9a-f]{32}$", journey.TraceId);
        Assert.True(
            Math.Abs(journey.PathSumMs - journey.PlacedToTerminalMs!.Value) <= ToleranceMs,
            $"the path's steps add up to {journey.PathSumMs} ms, placed → terminal took {journey.PlacedToTerminalMs} ms");

        // The path: Inventory reserves, Payment charges (pending work), Order confirms; each hop
        // begins where the one before ended.
        var path = journey.Hops.Where(h => h.OnCriticalPath).ToList();
        Assert.Equal(["inventory-service", "payment-service", "order-service"], path.Select(h => h.Service));
        Assert.Equal(journey.PlacedAt, path[0].WrittenAt);
        Assert.Equal(journey.TerminalAt, path[^1].HandledAt);
        for (var i = 1; i < path.Count; i++)
        {
            Assert.Equal(path[i - 1].HandledAt, path[i].WrittenAt);
        }

        Assert.Equal(5, path[1].Steps.Count); // outbox, Kafka, handling, waiting for the worker, the gateway call
        foreach (var hop in journey.Hops)
        {
            // Every boundary recorded, in the order the steps happened.
            Assert.NotNull(hop.PublishedAt);
            Assert.NotNull(hop.FetchedAt);
            DateTimeOffset[] boundaries =
            [
                hop.WrittenAt, hop.PublishedAt!.Value, hop.FetchedAt!.Value,
                .. hop.WorkQueuedAt is { } queued ? new[] { queued, hop.WorkStartedAt!.Value } : [],
                hop.HandledAt,
            ];
            for (var i = 1; i < boundaries.Length; i++)
            {
                Assert.True(boundaries[i] >= boundaries[i - 1], $"{Describe(hop)}: boundary {i} before boundary {i - 1}");
            }

            Assert.All(hop.Steps, s => Assert.True(s.Ms is >= 0, $"{Describe(hop)}: {s.Step} = {s.Ms}"));
            Assert.Equal(hop.TotalMs, hop.Steps.Sum(s => s.Ms!.Value), ToleranceMs);
            Assert.False(string.IsNullOrEmpty(hop.Topic));
            Assert.True(hop.Offset >= 0);
        }

        var emails = journey.Hops.Where(h => !h.OnCriticalPath).ToList();
        Assert.All(emails, h => Assert.Equal("notification-service", h.Service));

        // The breakdown of the orders placed around it counts this one.
        var from = Uri.EscapeDataString(journey.PlacedAt!.Value.AddSeconds(-1).ToString("O"));
        var to = Uri.EscapeDataString(journey.PlacedAt!.Value.AddSeconds(1).ToString("O"));
        var breakdown = (await suite.Analytics.GetFromJsonAsync<BreakdownView>($"/analytics/journeys/breakdown?from={from}&to={to}"))!;
        Assert.Equal((1, 1), (breakdown.OrdersPlaced, breakdown.Breakdown.PathsComplete));
        Assert.Contains(breakdown.Breakdown.Hops, h => h.Service == "payment-service" && h.OnCriticalPath && h.Steps.Any(s => s.Step == "external-call" && s.Ms.Count == 1));
    }

    [Fact]
    public async Task An_unknown_order_is_a_404_and_a_malformed_request_a_400_both_problem_details()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "journey-errors");

        await AssertProblemAsync(suite, "/analytics/orders/ORD-none-such/journey", HttpStatusCode.NotFound);
        await AssertProblemAsync(suite, $"/analytics/orders/{new string('x', 200)}/journey", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, "/analytics/orders/ORD%3Cscript%3E/journey", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, "/analytics/journeys/breakdown?from=yesterday&to=2026-01-01T00:00:00Z", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, "/analytics/journeys/breakdown?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, "/analytics/journeys/breakdown?from=2026-01-01T00:00:00Z&to=2026-01-09T00:00:00Z", HttpStatusCode.BadRequest);
    }

    private static async Task AssertProblemAsync(BookstoreSuite suite, string path, HttpStatusCode status)
    {
        using var response = await suite.Analytics.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private static async Task<string> PlaceAsync(BookstoreSuite suite)
    {
        using var content = new StringContent($$"""{"customerId":"journey","lines":[{"isbn":"{{Isbn}}","quantity":1}]}""", Encoding.UTF8, "application/json");
        using var response = await suite.Orders.PostAsync(new Uri("/orders", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<OrderStatusView>())!.Id;
    }

    private static string Describe(JourneyView? journey) =>
        journey is null ? "nothing" : $"terminal {journey.Terminal}, {journey.Hops.Count} hops ({string.Join("; ", journey.Hops.Select(Describe))}), gap: {journey.PathGap}";

    private static string Describe(HopView hop) =>
        $"{hop.Service} handling {hop.EventType} ({string.Join(", ", hop.Steps.Select(s => $"{s.Step} {s.Ms?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null"}"))})";

    private sealed record OrderStatusView(string Id, string Status);

    private sealed record SummaryView(long OrdersPlaced, long OrdersConfirmed);

    private sealed record StepView(string Step, double? Ms);

    private sealed record HopView(
        string Service,
        string EventType,
        string Topic,
        int Partition,
        long Offset,
        string Wrote,
        DateTimeOffset WrittenAt,
        DateTimeOffset? PublishedAt,
        DateTimeOffset? FetchedAt,
        DateTimeOffset? WorkQueuedAt,
        DateTimeOffset? WorkStartedAt,
        DateTimeOffset HandledAt,
        List<StepView> Steps,
        double TotalMs,
        bool OnCriticalPath);

    private sealed record JourneyView(
        string OrderId,
        string? TraceId,
        DateTimeOffset? PlacedAt,
        DateTimeOffset? TerminalAt,
        string? Terminal,
        double? PlacedToTerminalMs,
        double PathSumMs,
        bool PathComplete,
        string? PathGap,
        List<HopView> Hops);

    private sealed record PercentilesView(int Count, double? P50Ms, double? P99Ms);

    private sealed record StepBreakdownView(string Step, PercentilesView Ms);

    private sealed record HopBreakdownView(string Service, string EventType, bool OnCriticalPath, List<StepBreakdownView> Steps);

    private sealed record BreakdownTotalsView(int Orders, int PathsComplete, List<HopBreakdownView> Hops);

    private sealed record BreakdownView(int OrdersPlaced, BreakdownTotalsView Breakdown);
}

[Collection(KafkaCollection.Name)]
public sealed class JourneyTestsOnSqlite(KafkaClusterFixture fixture) : JourneyTests(fixture, StorageBackend.Sqlite);

[Collection(KafkaCollection.Name)]
public sealed class JourneyTestsOnPostgres(KafkaClusterFixture fixture) : JourneyTests(fixture, StorageBackend.Postgres);
