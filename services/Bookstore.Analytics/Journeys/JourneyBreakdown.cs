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
    /// <summary>Of journeys seen one at a time (<see cref="Tally"/>).</summary>
    public static JourneyBreakdown Of(IEnumerable<OrderJourney> journeys)
    {
        ArgumentNullException.ThrowIfNull(journeys);
        var tally = new Tally();
        foreach (var journey in journeys)
        {
            tally.Add(journey);
        }

        return tally.Breakdown();
    }

    /// <summary>Keeps of each journey only the durations the breakdown needs, so a breakdown of many
    /// orders can be read a chunk at a time: a few doubles per hop instead of the events and journeys.</summary>
    public sealed class Tally
    {
        private readonly Dictionary<(string Service, string EventType, string Wrote), HopTally> _hops = [];
        private readonly List<double> _placedToTerminal = [];
        private readonly List<double> _pathSums = [];
        private int _orders;
        private int _terminal;

        public void Add(OrderJourney journey)
        {
            ArgumentNullException.ThrowIfNull(journey);
            _orders++;
            if (journey.Terminal is not null)
            {
                _terminal++;
            }

            if (journey.PlacedToTerminalMs is { } placedToTerminal)
            {
                _placedToTerminal.Add(placedToTerminal);
            }

            if (journey.PathComplete)
            {
                _pathSums.Add(journey.PathSumMs);
            }

            foreach (var hop in journey.Hops)
            {
                var key = (hop.Service, hop.EventType, hop.Wrote);
                if (!_hops.TryGetValue(key, out var tally))
                {
                    _hops[key] = tally = new HopTally();
                }

                tally.Add(hop, journey.PlacedAt is { } placed ? (hop.WrittenAt - placed).TotalMilliseconds : 0);
            }
        }

        public JourneyBreakdown Breakdown() => new(
            _orders,
            _terminal,
            _pathSums.Count,
            DurationPercentiles.Of(_placedToTerminal),
            DurationPercentiles.Of(_pathSums),
            [.. _hops
                // In the order they happen in a typical journey: by the median start after placement.
                .OrderBy(h => Median(h.Value.FromPlacedMs))
                .ThenBy(h => h.Key.Service, StringComparer.Ordinal)
                .Select(h => new HopBreakdown(
                    h.Key.Service,
                    h.Key.EventType,
                    h.Key.Wrote,
                    2 * h.Value.OnCriticalPath >= h.Value.TotalMs.Count,
                    h.Value.TotalMs.Count,
                    [.. JourneySteps.All
                        .Where(h.Value.StepMs.ContainsKey)
                        .Select(step => new StepBreakdown(step, DurationPercentiles.Of(h.Value.StepMs[step])))],
                    DurationPercentiles.Of(h.Value.TotalMs)))]);
    }

    private sealed class HopTally
    {
        public List<double> FromPlacedMs { get; } = [];

        public List<double> TotalMs { get; } = [];

        /// <summary>Per step any hop had, the durations of the hops that timed it.</summary>
        public Dictionary<string, List<double>> StepMs { get; } = new(StringComparer.Ordinal);

        public int OnCriticalPath { get; private set; }

        public void Add(JourneyHop hop, double fromPlacedMs)
        {
            FromPlacedMs.Add(fromPlacedMs);
            TotalMs.Add(hop.TotalMs);
            if (hop.OnCriticalPath)
            {
                OnCriticalPath++;
            }

            foreach (var step in hop.Steps)
            {
                if (!StepMs.TryGetValue(step.Step, out var durations))
                {
                    StepMs[step.Step] = durations = [];
                }

                if (step.Ms is { } ms)
                {
                    durations.Add(ms);
                }
            }
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }
}
