using System.Text;
using Bookstore.Contracts;
using Confluent.Kafka;

namespace Bookstore.Messaging.Events;

/// <summary>The <c>content-type</c> header of the suite's records. CloudEvents' Kafka binding reads
/// a record without it as binary mode, so a CloudEvents SDK receiver would miss the structured
/// event in the body. Headers exist from Kafka 0.11: on 0.9 a record with one is refused, so there
/// the body alone (structured mode) has to do.</summary>
public static class ContentTypeHeader
{
    public const string Name = "content-type";

    public const string CloudEvents = "application/cloudevents+json";

    /// <summary>Dead letters and parked-row notices are plain JSON documents, not CloudEvents.</summary>
    public const string Json = "application/json";

    private static readonly byte[] CloudEventsBytes = Encoding.UTF8.GetBytes(CloudEvents);
    private static readonly byte[] JsonBytes = Encoding.UTF8.GetBytes(Json);

    /// <summary>The media type of what the suite writes to <paramref name="logicalTopic"/>.</summary>
    public static string For(string logicalTopic) =>
        logicalTopic == Topics.DeadLetters.Name ? Json : CloudEvents;

    /// <summary>The headers of a record for <paramref name="logicalTopic"/>; <c>null</c> (no headers
    /// at all) when the brokers have none.</summary>
    public static Headers? For(KafkaCapabilities capabilities, string logicalTopic)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        if (!capabilities.RecordHeaders)
        {
            return null;
        }

        // A fresh collection per record: Headers is mutable and travels with the delivery report.
        return new Headers { { Name, For(logicalTopic) == CloudEvents ? CloudEventsBytes : JsonBytes } };
    }
}
