using Bookstore.Contracts.Events;

namespace Bookstore.Analytics.Journeys;

/// <summary>The steps of a hop, each between two recorded timestamps (never a remainder).</summary>
public static class JourneySteps
{
    /// <summary>The cause written (its <c>time</c>) → handed to the Kafka client by the outbox relay.</summary>
    public const string QueuedInOutbox = "queued-in-outbox";

    /// <summary>Published → fetched by the consumer of the service that handles it.</summary>
    public const string InKafka = "in-kafka";

    /// <summary>Fetched → the handler's transaction wrote the next event, or recorded pending work.</summary>
    public const string Handling = "handling";

    /// <summary>Pending work recorded → the worker began the external call.</summary>
    public const string WaitingForWorker = "waiting-for-worker";

    /// <summary>The external call began (the payment gateway, the email) → its outcome written.</summary>
    public const string ExternalCall = "external-call";

    public static IReadOnlyList<string> All { get; } = [QueuedInOutbox, InKafka, Handling, WaitingForWorker, ExternalCall];
}

/// <param name="Step">One of <see cref="JourneySteps"/>.</param>
/// <param name="Ms">Null when a boundary was not recorded (an event from before the relay and the
/// consumers stamped them): never estimated.</param>
public sealed record JourneyStep(string Step, double? Ms);

/// <summary>One service handling one event of the order: the cause <see cref="EventType"/>, read from
/// <see cref="Topic"/>/<see cref="Partition"/>@<see cref="Offset"/> by <see cref="Service"/>'s group,
/// whose handling wrote <see cref="Wrote"/>.</summary>
/// <param name="WrittenAt">The cause written, inside its writer's transaction.</param>
/// <param name="PublishedAt">The cause handed to the Kafka client by its writer's outbox relay.</param>
/// <param name="FetchedAt">The cause fetched from Kafka by <see cref="Service"/>'s consumer.</param>
/// <param name="HandledAt">What the handling wrote (<see cref="Wrote"/>), written.</param>
/// <param name="TotalMs">HandledAt − WrittenAt: the sum of <see cref="Steps"/> when every one is timed.</param>
/// <param name="OnCriticalPath">On the chain of causes from OrderPlaced to the terminal event; a side
/// hop (an email) is not.</param>
public sealed record JourneyHop(
    string Service,
    string EventType,
    string EventId,
    string Topic,
    int Partition,
    long Offset,
    string Wrote,
    string WroteEventId,
    DateTimeOffset WrittenAt,
    DateTimeOffset? PublishedAt,
    DateTimeOffset? FetchedAt,
    DateTimeOffset? WorkQueuedAt,
    DateTimeOffset? WorkStartedAt,
    DateTimeOffset HandledAt,
    IReadOnlyList<JourneyStep> Steps,
    double TotalMs,
    bool OnCriticalPath);

/// <summary>An order's way through the services, hop by hop, in time order.</summary>
/// <param name="Terminal">The type of the first OrderConfirmed or OrderCancelled; null while pending.</param>
/// <param name="PlacedToTerminalMs">Terminal written − OrderPlaced written.</param>
/// <param name="PathSumMs">The sum of the timed steps of the hops on the critical path: equal to
/// <paramref name="PlacedToTerminalMs"/> when <paramref name="PathComplete"/>.</param>
/// <param name="PathComplete">The causes lead from the terminal event back to OrderPlaced and every
/// step on the way is timed.</param>
/// <param name="PathGap">Why the path is not complete; null when it is.</param>
public sealed record OrderJourney(
    string OrderId,
    string? TraceId,
    DateTimeOffset? PlacedAt,
    DateTimeOffset? TerminalAt,
    string? Terminal,
    double? PlacedToTerminalMs,
    double PathSumMs,
    bool PathComplete,
    string? PathGap,
    IReadOnlyList<JourneyHop> Hops)
{
    private static readonly HashSet<string> TerminalTypes = [EventCatalog.OrderConfirmed.TypeName, EventCatalog.OrderCancelled.TypeName];

    /// <summary>The journey told by the recorded events of one order; null when there are none.</summary>
    /// <remarks>A hop is an event whose cause is among the order's events: a cause not recorded yet
    /// (Analytics reads the topics' partitions independently) gives its hop once it is. The critical
    /// path follows <c>causationid</c> back from the terminal event; every hop on it starts where the
    /// previous one ended (at its cause's <c>time</c>), so its steps add up to placed → terminal.</remarks>
    public static OrderJourney? Of(string orderId, IEnumerable<JourneyEvent> recorded)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var events = recorded.Where(e => e.OrderId == orderId).ToList();
        if (events.Count == 0)
        {
            return null;
        }

        var byId = new Dictionary<string, JourneyEvent>(StringComparer.Ordinal);
        foreach (var e in events)
        {
            byId.TryAdd(e.EventId, e);
        }

        var placed = events.Where(e => e.Type == EventCatalog.OrderPlaced.TypeName).MinBy(e => e.WrittenAt);
        var terminal = events.Where(e => TerminalTypes.Contains(e.Type)).MinBy(e => e.WrittenAt);
        var (onPath, gap) = CriticalPath(terminal, byId);
        var hops = byId.Values
            .Where(e => e.CausationId is { } cause && byId.ContainsKey(cause))
            .Select(e => HopOf(byId[e.CausationId!], e, onPath.Contains(e.EventId)))
            .OrderBy(h => h.WrittenAt).ThenBy(h => h.HandledAt).ThenBy(h => h.Service, StringComparer.Ordinal)
            .ToList();
        var pathSteps = hops.Where(h => h.OnCriticalPath).SelectMany(h => h.Steps).ToList();
        var untimed = pathSteps.Count(s => s.Ms is null);
        if (gap is null && untimed > 0)
        {
            gap = $"{untimed} step(s) on the path have no timestamp: their events carry no publishedat/causefetchedat (written before the services recorded them)";
        }

        return new OrderJourney(
            orderId,
            placed?.TraceId ?? events.Select(e => e.TraceId).FirstOrDefault(t => t is not null),
            placed?.WrittenAt,
            terminal?.WrittenAt,
            terminal?.Type,
            placed is not null && terminal is not null ? Ms(placed.WrittenAt, terminal.WrittenAt) : null,
            Math.Round(pathSteps.Sum(s => s.Ms ?? 0), 3),
            gap is null,
            gap,
            hops);
    }

    /// <summary>The ids of the events whose hop is on the path from OrderPlaced to the terminal
    /// event, and why that path is broken, if it is.</summary>
    private static (HashSet<string> OnPath, string? Gap) CriticalPath(JourneyEvent? terminal, Dictionary<string, JourneyEvent> byId)
    {
        var onPath = new HashSet<string>(StringComparer.Ordinal);
        if (terminal is null)
        {
            return (onPath, "the order is not terminal (yet)");
        }

        var current = terminal;
        while (current.Type != EventCatalog.OrderPlaced.TypeName)
        {
            if (current.CausationId is not { } causeId)
            {
                return (onPath, $"{current.Type} names no cause: a timer or an HTTP request wrote it (or a service from before causationid)");
            }

            if (!byId.TryGetValue(causeId, out var cause))
            {
                return (onPath, $"the cause {causeId} of {current.Type} is not recorded (yet)");
            }

            if (!onPath.Add(current.EventId))
            {
                return (onPath, $"the causes of {current.Type} go round in a circle");
            }

            current = cause;
        }

        return (onPath, null);
    }

    private static JourneyHop HopOf(JourneyEvent cause, JourneyEvent written, bool onCriticalPath)
    {
        List<JourneyStep> steps =
        [
            new(JourneySteps.QueuedInOutbox, Ms(cause.WrittenAt, cause.PublishedAt)),
            new(JourneySteps.InKafka, Ms(cause.PublishedAt, written.CauseFetchedAt)),
        ];
        if (written.WorkQueuedAt is null && written.WorkStartedAt is null)
        {
            steps.Add(new(JourneySteps.Handling, Ms(written.CauseFetchedAt, written.WrittenAt)));
        }
        else
        {
            steps.Add(new(JourneySteps.Handling, Ms(written.CauseFetchedAt, written.WorkQueuedAt)));
            steps.Add(new(JourneySteps.WaitingForWorker, Ms(written.WorkQueuedAt, written.WorkStartedAt)));
            steps.Add(new(JourneySteps.ExternalCall, Ms(written.WorkStartedAt, written.WrittenAt)));
        }

        return new JourneyHop(
            written.Source,
            cause.Type,
            cause.EventId,
            cause.Topic,
            cause.Partition,
            cause.Offset,
            written.Type,
            written.EventId,
            cause.WrittenAt,
            cause.PublishedAt,
            written.CauseFetchedAt,
            written.WorkQueuedAt,
            written.WorkStartedAt,
            written.WrittenAt,
            steps,
            Ms(cause.WrittenAt, written.WrittenAt),
            onCriticalPath);
    }

    // To the microsecond: rounding each step that finely keeps a path's sum within a few
    // microseconds of placed → terminal.
    private static double Ms(DateTimeOffset from, DateTimeOffset to) => Math.Round((to - from).TotalMilliseconds, 3);

    private static double? Ms(DateTimeOffset? from, DateTimeOffset? to) => from is { } f && to is { } t ? Ms(f, t) : null;
}
