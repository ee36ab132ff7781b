namespace Bookstore.Analytics.Journeys;

/// <summary>Nearest-rank percentiles of <see cref="Count"/> durations; null figures when there are none.</summary>
public sealed record DurationPercentiles(int Count, double? P50Ms, double? P90Ms, double? P99Ms, double? MaxMs)
{
    public static DurationPercentiles Of(IEnumerable<double> durations)
    {
        var sorted = durations.Order().ToArray();
        if (sorted.Length == 0)
        {
            return new DurationPercentiles(0, null, null, null, null);
        }

        double At(double q) => Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 3);
        return new DurationPercentiles(sorted.Length, At(0.50), At(0.90), At(0.99), Math.Round(sorted[^1], 3));
    }
}

/// <param name="Step">One of <see cref="JourneySteps"/>.</param>
/// <param name="Ms">Over the hops where both its boundaries were recorded.</param>
public sealed record StepBreakdown(string Step, DurationPercentiles Ms);

/// <summary>One kind of hop (<see cref="Service"/> handling <see cref="EventType"/> and writing
/// <see cref="Wrote"/>) across the orders.</summary>
/// <param name="OnCriticalPath">Whether it was on the path of at least half of its orders.</param>
/// <param name="Hops">How many hops of this kind the orders took.</param>
public sealed record HopBreakdown(
    string Service,
    string EventType,
    string Wrote,
    bool OnCriticalPath,
    int Hops,
    IReadOnlyList<StepBreakdown> Steps,
    DurationPercentiles TotalMs);

/// <summary>Where the time of many orders went: per kind of hop and per step, percentiles across
/// the orders' journeys.</summary>
/// <param name="Orders">The journeys taken into account (terminal or not).</param>
/// <param name="Terminal">Of those, the ones confirmed or cancelled.</param>
/// <param name="PathsComplete">Of those, the ones whose critical path is complete and timed.</param>
/// <param name="PlacedToTerminalMs">Over the terminal orders.</param>
/// <param name="PathSumMs">Over the complete paths: the sum of each path's steps.</param>
public sealed record JourneyBreakdown(
    int Orders,
    int Terminal,
    int PathsComplete,
    DurationPercentiles PlacedToTerminalMs,
    DurationPercentiles PathSumMs,
    IReadOnlyList<HopBreakdown> Hops)
{
    public static JourneyBreakdown Of(IReadOnlyCollection<OrderJourney> journeys)
    {
        ArgumentNullException.ThrowIfNull(journeys);
        var hops = journeys
            .SelectMany(j => j.Hops.Select(h => (Hop: h, FromPlacedMs: j.PlacedAt is { } placed ? (h.WrittenAt - placed).TotalMilliseconds : 0)))
            .GroupBy(x => (x.Hop.Service, x.Hop.EventType, x.Hop.Wrote))
            // In the order they happen in a typical journey: by the median start after placement.
            .OrderBy(g => Median(g.Select(x => x.FromPlacedMs)))
            .ThenBy(g => g.Key.Service, StringComparer.Ordinal)
            .Select(g => new HopBreakdown(
                g.Key.Service,
                g.Key.EventType,
                g.Key.Wrote,
                2 * g.Count(x => x.Hop.OnCriticalPath) >= g.Count(),
                g.Count(),
                [.. JourneySteps.All
                    .Where(step => g.Any(x => x.Hop.Steps.Any(s => s.Step == step)))
                    .Select(step => new StepBreakdown(step, DurationPercentiles.Of(g.SelectMany(x => x.Hop.Steps).Where(s => s.Step == step && s.Ms is not null).Select(s => s.Ms!.Value))))],
                DurationPercentiles.Of(g.Select(x => x.Hop.TotalMs))))
            .ToList();
        return new JourneyBreakdown(
            journeys.Count,
            journeys.Count(j => j.Terminal is not null),
            journeys.Count(j => j.PathComplete),
            DurationPercentiles.Of(journeys.Where(j => j.PlacedToTerminalMs is not null).Select(j => j.PlacedToTerminalMs!.Value)),
            DurationPercentiles.Of(journeys.Where(j => j.PathComplete).Select(j => j.PathSumMs)),
            hops);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }
}
