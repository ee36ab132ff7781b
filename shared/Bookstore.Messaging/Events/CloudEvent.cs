using System.Text.Json;
using System.Text.Json.Serialization;

namespace Bookstore.Messaging.Events;

/// <summary>A CloudEvents 1.0 event in structured mode: every attribute travels in the JSON body,
/// so any Kafka client can read it and no broker feature newer than 0.9 (headers) is needed.</summary>
public sealed record CloudEvent
{
    [JsonPropertyName("specversion")]
    public string SpecVersion { get; init; } = "1.0";

    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("source")]
    public required string Source { get; init; }

    [JsonPropertyName("type")]
    public required string Type { get; init; }

    [JsonPropertyName("time")]
    public DateTimeOffset Time { get; init; }

    [JsonPropertyName("subject")]
    public string? Subject { get; init; }

    [JsonPropertyName("datacontenttype")]
    public string DataContentType { get; init; } = "application/json";

    /// <summary>W3C trace context, carried in the body for want of headers on 0.9.</summary>
    [JsonPropertyName("traceparent")]
    public string? TraceParent { get; init; }

    /// <summary>Extension: the id of the event whose handling wrote this one; absent when an HTTP
    /// request or a timer wrote it.</summary>
    [JsonPropertyName("causationid")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? CausationId { get; init; }

    /// <summary>Extension: when the writing service's consumer fetched that cause from Kafka.</summary>
    [JsonPropertyName("causefetchedat")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? CauseFetchedAt { get; init; }

    /// <summary>Extension, when pending work (a charge, an email) wrote the event: when the handler
    /// of the cause recorded that work.</summary>
    [JsonPropertyName("workqueuedat")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? WorkQueuedAt { get; init; }

    /// <summary>Extension, with <see cref="WorkQueuedAt"/>: when the worker began the external call.</summary>
    [JsonPropertyName("workstartedat")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? WorkStartedAt { get; init; }

    /// <summary>Extension stamped by the outbox relay as it hands the record to the Kafka client (0.9
    /// records carry no timestamp); never in the stored outbox row, so each publication has its own.</summary>
    [JsonPropertyName("publishedat")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? PublishedAt { get; init; }

    [JsonPropertyName("data")]
    public JsonElement Data { get; init; }
}
