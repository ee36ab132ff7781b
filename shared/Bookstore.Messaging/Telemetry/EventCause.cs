namespace Bookstore.Messaging.Telemetry;

/// <summary>The event being handled, and when, while its handler (or the pending work it recorded)
/// writes new events: the outbox copies it into each one (<c>causationid</c>, <c>causefetchedat</c>,
/// <c>workqueuedat</c>, <c>workstartedat</c>), so an order's journey is told by recorded times alone.
/// Ambient like <see cref="System.Diagnostics.Activity.Current"/>, which carries the trace the same way.</summary>
public sealed record EventCause(string EventId, DateTimeOffset FetchedAt, string? TraceParent)
{
    private static readonly AsyncLocal<EventCause?> Ambient = new();

    /// <summary>When the handler recorded the pending work that writes the event.</summary>
    public DateTimeOffset? WorkQueuedAt { get; init; }

    /// <summary>When the worker began that work's external call.</summary>
    public DateTimeOffset? WorkStartedAt { get; init; }

    /// <summary>The cause of what is being written now, if any.</summary>
    public static EventCause? Current => Ambient.Value;

    /// <summary>Makes <paramref name="cause"/> current until the returned scope is disposed.</summary>
    public static Scope Enter(EventCause? cause)
    {
        var previous = Ambient.Value;
        Ambient.Value = cause;
        return new Scope(previous);
    }

    public readonly struct Scope(EventCause? previous) : IDisposable
    {
        public void Dispose() => Ambient.Value = previous;
    }
}
