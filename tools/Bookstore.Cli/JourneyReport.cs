using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;

namespace Bookstore.Cli;

// Analytics' journey answers as the CLI reads them (GET /analytics/orders/{id}/journey and
// /analytics/journeys/breakdown), and how it prints them.

internal sealed record JourneyStepView(string Step, double? Ms);

internal sealed record JourneyHopView(
    string Service,
    string EventType,
    string Topic,
    int Partition,
    long Offset,
    string Wrote,
    IReadOnlyList<JourneyStepView> Steps,
    double TotalMs,
    bool OnCriticalPath);

internal sealed record OrderJourneyView(
    string OrderId,
    string? TraceId,
    string? Terminal,
    double? PlacedToTerminalMs,
    double PathSumMs,
    bool PathComplete,
    string? PathGap,
    IReadOnlyList<JourneyHopView> Hops);

internal sealed record DurationPercentilesView(int Count, double? P50Ms, double? P90Ms, double? P99Ms, double? MaxMs);

internal sealed record StepBreakdownView(string Step, DurationPercentilesView Ms);

internal sealed record HopBreakdownView(
    string Service,
    string EventType,
    string Wrote,
    bool OnCriticalPath,
    int Hops,
    IReadOnlyList<StepBreakdownView> Steps,
    DurationPercentilesView TotalMs);

internal sealed record JourneyBreakdownView(
    int Orders,
    int Terminal,
    int PathsComplete,
    DurationPercentilesView PlacedToTerminalMs,
    DurationPercentilesView PathSumMs,
    IReadOnlyList<HopBreakdownView> Hops);

internal sealed record JourneyBreakdownReportView(DateTimeOffset From, DateTimeOffset To, int OrdersPlaced, int OrdersSampled, JourneyBreakdownView Breakdown);

internal static class JourneyReport
{
    public static readonly Uri DefaultAnalytics = new("http://127.0.0.1:5500");

    /// <summary>The steps in the order they happen, with the column each gets.</summary>
    private static readonly (string Step, string Header)[] Columns =
    [
        ("queued-in-outbox", "outbox"),
        ("in-kafka", "in Kafka"),
        ("handling", "handling"),
        ("waiting-for-worker", "worker"),
        ("external-call", "call"),
    ];

    /// <summary><c>bookstore.stock.reserved.v1</c> → <c>stock.reserved</c>.</summary>
    public static string ShortType(string type)
    {
        var name = type.StartsWith("bookstore.", StringComparison.Ordinal) ? type["bookstore.".Length..] : type;
        var version = name.LastIndexOf(".v", StringComparison.Ordinal);
        return version > 0 ? name[..version] : name;
    }

    /// <summary>The order's journey once Analytics has recorded its terminal event and the path is
    /// complete (then a moment longer for the email of the terminal event, a side hop), or what it
    /// has when <paramref name="deadline"/> passes; null when Analytics does not know the order.</summary>
    public static async Task<OrderJourneyView?> WaitForJourneyAsync(HttpClient analytics, string orderId, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan? terminalSeen = null;
        OrderJourneyView? journey = null;
        while (true)
        {
            using var response = await analytics.GetAsync(new Uri($"/analytics/orders/{Uri.EscapeDataString(orderId)}/journey", UriKind.Relative), cancellationToken);
            if (response.StatusCode != HttpStatusCode.NotFound)
            {
                response.EnsureSuccessStatusCode();
                journey = await response.Content.ReadFromJsonAsync<OrderJourneyView>(cancellationToken);
            }

            if (journey?.Terminal is { } terminal)
            {
                terminalSeen ??= clock.Elapsed;
                var emailed = journey.Hops.Any(h => h.EventType == terminal && !h.OnCriticalPath);
                // Without the journey attributes (services from before them) the path never
                // completes: a few seconds after the terminal event is enough to say so.
                if ((journey.PathComplete && emailed) || clock.Elapsed - terminalSeen > TimeSpan.FromSeconds(3))
                {
                    return journey;
                }
            }

            if (clock.Elapsed > deadline)
            {
                return journey;
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    public static void Print(OrderJourneyView journey, TextWriter output)
    {
        output.WriteLine(
            $"journey of {journey.OrderId}{(journey.TraceId is null ? string.Empty : $" (trace {journey.TraceId})")}: " +
            (journey.Terminal is null ? "not terminal yet" : $"placed → {ShortType(journey.Terminal)} {Ms(journey.PlacedToTerminalMs)} ms; the critical path's steps add up to {Ms(journey.PathSumMs)} ms"));
        if (journey.PathGap is not null)
        {
            output.WriteLine($"  critical path incomplete: {journey.PathGap}");
        }

        if (journey.Hops.Count == 0)
        {
            return;
        }

        var header = new StringBuilder($"  {"hop (★ on the critical path)",-60} {"read from",-24}");
        foreach (var (_, title) in Columns)
        {
            header.Append(CultureInfo.InvariantCulture, $" {title,9}");
        }

        output.WriteLine(header.Append(CultureInfo.InvariantCulture, $" {"total",9}  (ms)"));
        foreach (var hop in journey.Hops)
        {
            var line = new StringBuilder().Append(CultureInfo.InvariantCulture, $"  {(hop.OnCriticalPath ? "★" : " ")} {$"{hop.Service} {ShortType(hop.EventType)} → {ShortType(hop.Wrote)}",-58} {$"{hop.Topic}/{hop.Partition}@{hop.Offset}",-24}");
            foreach (var (step, _) in Columns)
            {
                var taken = hop.Steps.FirstOrDefault(s => s.Step == step);
                line.Append(CultureInfo.InvariantCulture, $" {(taken is null ? string.Empty : Ms(taken.Ms)),9}");
            }

            output.WriteLine(line.Append(CultureInfo.InvariantCulture, $" {Ms(hop.TotalMs),9}"));
        }
    }

    /// <summary>The breakdown of the journeys of the orders placed in [<paramref name="from"/>,
    /// <paramref name="to"/>), once Analytics has recorded <paramref name="terminal"/> of them as
    /// terminal (it reads the topics behind the load), asked for at growing intervals so a busy
    /// Analytics is not polled hard; what it has when <paramref name="deadline"/> passes.</summary>
    public static async Task<JourneyBreakdownReportView> WaitForBreakdownAsync(
        HttpClient analytics, DateTimeOffset from, DateTimeOffset to, int terminal, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var interval = TimeSpan.FromMilliseconds(500);
        var uri = new Uri($"/analytics/journeys/breakdown?from={Uri.EscapeDataString(from.ToString("O", CultureInfo.InvariantCulture))}&to={Uri.EscapeDataString(to.ToString("O", CultureInfo.InvariantCulture))}", UriKind.Relative);
        while (true)
        {
            var report = (await analytics.GetFromJsonAsync<JourneyBreakdownReportView>(uri, cancellationToken))!;
            var sampledShare = report.OrdersPlaced == 0 ? 1 : (double)report.OrdersSampled / report.OrdersPlaced;
            if (report.Breakdown.Terminal >= terminal * sampledShare || clock.Elapsed + interval > deadline)
            {
                return report;
            }

            await Task.Delay(interval, cancellationToken);
            interval = TimeSpan.FromTicks(Math.Min(interval.Ticks * 2, TimeSpan.FromSeconds(8).Ticks));
        }
    }

    public static void Print(JourneyBreakdownReportView report, TextWriter output)
    {
        var b = report.Breakdown;
        output.WriteLine($"  journeys:    {report.OrdersPlaced} orders placed during the run ({(report.OrdersSampled == report.OrdersPlaced ? "all" : $"{report.OrdersSampled}, evenly spread,")} read from Analytics), {b.Terminal} terminal, {b.PathsComplete} with a complete critical path");
        output.WriteLine($"               placed→terminal {P50P99(b.PlacedToTerminalMs)} ms; the critical path's steps add up to {P50P99(b.PathSumMs)} ms (p50 / p99)");
        if (b.Hops.Count == 0)
        {
            return;
        }

        output.WriteLine("  where the time goes, per hop and step, p50 / p99 ms (★ on the critical path):");
        var header = new StringBuilder($"    {"hop",-60} {"hops",6}");
        foreach (var (_, title) in Columns)
        {
            header.Append(CultureInfo.InvariantCulture, $" {title,15}");
        }

        output.WriteLine(header.Append(CultureInfo.InvariantCulture, $" {"total",15}"));
        foreach (var hop in b.Hops)
        {
            var line = new StringBuilder().Append(CultureInfo.InvariantCulture, $"    {(hop.OnCriticalPath ? "★" : " ")} {$"{hop.Service} {ShortType(hop.EventType)} → {ShortType(hop.Wrote)}",-58} {hop.Hops,6}");
            foreach (var (step, _) in Columns)
            {
                var taken = hop.Steps.FirstOrDefault(s => s.Step == step);
                line.Append(CultureInfo.InvariantCulture, $" {(taken is null ? string.Empty : P50P99(taken.Ms)),15}");
            }

            output.WriteLine(line.Append(CultureInfo.InvariantCulture, $" {P50P99(hop.TotalMs),15}"));
        }
    }

    private static string P50P99(DurationPercentilesView p) => p.Count == 0 ? "–" : $"{Ms(p.P50Ms)} / {Ms(p.P99Ms)}";

    private static string Ms(double? ms) => ms is { } value ? value.ToString(value >= 100 ? "0" : "0.0", CultureInfo.InvariantCulture) : "–";
}
