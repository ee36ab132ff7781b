using System.Diagnostics;
using Bookstore.Messaging.Events;

namespace Bookstore.Messaging.Telemetry;

/// <summary>The spans of the messaging library, by the OpenTelemetry semantic conventions for
/// messaging: <c>create {topic}</c> when an event is written to the outbox (its context is the
/// event's <c>traceparent</c>), <c>publish {topic}</c> when the relay hands it to Kafka (a child of,
/// and linked to, the create span), <c>process {topic}</c> when a service handles it (a child of
/// the create span), and one span per piece of pending work (a child of the process span whose
/// handler recorded it).</summary>
public static class MessagingTelemetry
{
    /// <summary>Create, process and pending-work spans: their contexts travel in the events.</summary>
    public const string SourceName = "Bookstore.Messaging";

    /// <summary>The relay's publish spans: nothing propagates from them, so they are worth making
    /// only for an exporter.</summary>
    public const string RelaySourceName = "Bookstore.Messaging.Relay";

    internal static readonly ActivitySource Source = new(SourceName);
    internal static readonly ActivitySource RelaySource = new(RelaySourceName);

    internal const string System = "messaging.system";
    internal const string Destination = "messaging.destination.name";
    internal const string PartitionId = "messaging.destination.partition.id";
    internal const string Offset = "messaging.kafka.offset";
    internal const string MessageKey = "messaging.kafka.message.key";
    internal const string MessageId = "messaging.message.id";
    internal const string ConsumerGroup = "messaging.consumer.group.name";
    internal const string OperationType = "messaging.operation.type";
    internal const string OperationName = "messaging.operation.name";
    internal const string EventType = "cloudevents.event_type";
    internal const string EventId = "cloudevents.event_id";
    internal const string ErrorType = "error.type";

    /// <summary>The span of writing an event to the outbox, under whatever is current (an HTTP
    /// request, a process span, a work span); null when nobody listens.</summary>
    internal static Activity? StartCreate(string topic, string eventType)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        // Pending work writes its events after its span ended, outside it: the cause names that span.
        var parent = Activity.Current is null && EventCause.Current?.TraceParent is { } traceParent ? ParentOf(traceParent) : default;
        var activity = Source.StartActivity($"create {topic}", ActivityKind.Producer, parent);
        if (activity is { IsAllDataRequested: true })
        {
            SetOperation(activity, topic, "create", "create");
            activity.SetTag(EventType, eventType);
        }

        return activity;
    }

    /// <summary>Names the event a create span wrote, once it has its id.</summary>
    internal static void Created(Activity? activity, string eventId)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(MessageId, eventId);
            activity.SetTag(EventId, eventId);
        }
    }

    /// <summary>The span of handling one event, a child of the span that wrote it.</summary>
    internal static Activity? StartProcess(CloudEvent cloudEvent, string topic, int partition, long offset, string group)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity($"process {topic}", ActivityKind.Consumer, ParentOf(cloudEvent.TraceParent));
        if (activity is { IsAllDataRequested: true })
        {
            SetOperation(activity, topic, "process", "process");
            activity.SetTag(ConsumerGroup, group);
            SetPosition(activity, partition, offset);
            activity.SetTag(MessageId, cloudEvent.Id);
            activity.SetTag(EventId, cloudEvent.Id);
            activity.SetTag(EventType, cloudEvent.Type);
        }

        return activity;
    }

    /// <summary>The span of a piece of pending work (an external call), a child of the span whose
    /// handler recorded it.</summary>
    internal static Activity? StartWork(string name, string? parentTraceParent, string kind, string key)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity(name, ActivityKind.Client, ParentOf(parentTraceParent));
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("bookstore.work.kind", kind);
            activity.SetTag("bookstore.work.key", key);
        }

        return activity;
    }

    /// <summary>Records the publication of one outbox row after its delivery report: a span from
    /// <paramref name="handedOverAt"/> to now, child of and linked to the span that wrote the row.</summary>
    internal static void RecordPublish(string topic, string key, string eventId, string? traceParent, DateTimeOffset handedOverAt, int partition, long offset, string? error)
    {
        if (!RelaySource.HasListeners())
        {
            return;
        }

        var created = ParentOf(traceParent);
        ActivityLink[]? links = created == default ? null : [new ActivityLink(created)];
        using var activity = RelaySource.StartActivity($"publish {topic}", ActivityKind.Producer, created, links: links, startTime: handedOverAt);
        if (activity is not { IsAllDataRequested: true })
        {
            return;
        }

        SetOperation(activity, topic, "send", "publish");
        activity.SetTag(MessageId, eventId);
        activity.SetTag(MessageKey, key);
        if (partition >= 0)
        {
            SetPosition(activity, partition, offset);
        }

        if (error is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, error);
            activity.SetTag(ErrorType, "delivery_failed");
        }
    }

    /// <summary>Marks <paramref name="activity"/> failed with <paramref name="error"/>.</summary>
    internal static void Fail(Activity? activity, Exception error)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetStatus(ActivityStatusCode.Error, error.Message);
        if (activity.IsAllDataRequested)
        {
            activity.SetTag(ErrorType, error.GetType().FullName);
        }
    }

    private static void SetOperation(Activity activity, string topic, string type, string name)
    {
        activity.SetTag(System, "kafka");
        activity.SetTag(Destination, topic);
        activity.SetTag(OperationType, type);
        activity.SetTag(OperationName, name);
    }

    private static void SetPosition(Activity activity, int partition, long offset)
    {
        activity.SetTag(PartitionId, partition.ToString(global::System.Globalization.CultureInfo.InvariantCulture));
        activity.SetTag(Offset, offset);
    }

    private static ActivityContext ParentOf(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, isRemote: true, out var context) ? context : default;
}
