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

    [JsonPropertyName("data")]
    public JsonElement Data { get; init; }
}
