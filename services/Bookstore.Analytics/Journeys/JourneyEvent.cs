using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;

namespace Bookstore.Analytics.Journeys;

/// <summary>What Analytics keeps of one event of an order for its journey: where it was read, and
/// the timestamps its writer and the outbox relay put into it (see <see cref="CloudEvent"/>).</summary>
/// <param name="Source">The service that wrote the event: the group that handled its cause.</param>
/// <param name="Topic">The logical topic (as in the topic table) where Analytics read it.</param>
/// <param name="WrittenAt">CloudEvents' <c>time</c>: written inside the writing service's transaction.</param>
/// <param name="PublishedAt">When the outbox relay handed it to the Kafka client; null before the relay stamped it.</param>
/// <param name="CausationId">The event whose handling wrote this one; null when an HTTP request or a timer did.</param>
/// <param name="CauseFetchedAt">When the writing service's consumer fetched that cause.</param>
/// <param name="WorkQueuedAt">With pending work (a charge, an email): when the cause's handler recorded it.</param>
/// <param name="WorkStartedAt">With pending work: when the worker began the external call.</param>
/// <param name="TraceId">The W3C trace id of the span that wrote it.</param>
public sealed record JourneyEvent(
    string EventId,
    string OrderId,
    string Type,
    string Source,
    string Topic,
    int Partition,
    long Offset,
    DateTimeOffset WrittenAt,
    DateTimeOffset? PublishedAt,
    string? CausationId,
    DateTimeOffset? CauseFetchedAt,
    DateTimeOffset? WorkQueuedAt,
    DateTimeOffset? WorkStartedAt,
    string? TraceId)
{
    public static JourneyEvent From(CloudEvent cloudEvent, string orderId, string topic, int partition, long offset)
    {
        ArgumentNullException.ThrowIfNull(cloudEvent);
        return new JourneyEvent(
            cloudEvent.Id,
            orderId,
            cloudEvent.Type,
            cloudEvent.Source,
            topic,
            partition,
            offset,
            cloudEvent.Time,
            cloudEvent.PublishedAt,
            cloudEvent.CausationId,
            cloudEvent.CauseFetchedAt,
            cloudEvent.WorkQueuedAt,
            cloudEvent.WorkStartedAt,
            TraceIdOf(cloudEvent.TraceParent));
    }

    /// <summary>The order an event belongs to; null for events of no order (the catalog's, an
    /// email requested for a customer only).</summary>
    public static string? OrderIdOf(object data) => data switch
    {
        OrderPlaced e => e.OrderId,
        OrderConfirmed e => e.OrderId,
        OrderCancelled e => e.OrderId,
        StockReserved e => e.OrderId,
        StockRejected e => e.OrderId,
        StockReleased e => e.OrderId,
        PaymentSucceeded e => e.OrderId,
        PaymentFailed e => e.OrderId,
        NotificationRequested e => e.OrderId,
        NotificationSent e => e.OrderId,
        _ => null,
    };

    /// <summary>The trace id of a W3C <c>traceparent</c> (<c>version-traceid-spanid-flags</c>): its
    /// second field; null when there is none or it is not of that form.</summary>
    public static string? TraceIdOf(string? traceParent)
    {
        var fields = traceParent?.Split('-');
        return fields is { Length: >= 4 } && fields[1].Length == 32 ? fields[1] : null;
    }
}
