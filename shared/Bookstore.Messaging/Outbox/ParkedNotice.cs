using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Messaging.Events;

namespace Bookstore.Messaging.Outbox;

/// <summary>Published to the dead-letter topic when the relay parks a row, so whoever watches
/// failures (the dashboard, an alert on that topic) sees it without reading the service's database.
/// Small by construction: the parked value itself stays in <c>outbox_parked</c>.</summary>
public sealed record ParkedNotice(string Kind, string Service, long Seq, string EventId, string Topic, string Key, long ValueBytes, string Error, DateTimeOffset ParkedAt)
{
    public const string KindName = "outbox-row-parked";

    public static EventRecord For(string service, long seq, string eventId, string topic, string key, long valueBytes, string error, DateTimeOffset parkedAt)
    {
        var notice = new ParkedNotice(KindName, service, seq, eventId, topic, key, valueBytes, error, parkedAt);
        return new EventRecord($"parked-{eventId}", Topics.DeadLetters.Name, key, JsonSerializer.Serialize(notice, EventSerializer.Options));
    }
}
