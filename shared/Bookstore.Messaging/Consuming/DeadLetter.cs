using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Messaging.Events;

namespace Bookstore.Messaging.Consuming;

/// <summary>A message a consumer gave up on, as published to the dead-letter topic: the original
/// coordinates, key and value (base64 where not UTF-8), the error and the attempts (0.9 has no
/// headers, so all of it is in the body).</summary>
public sealed record DeadLetter(
    string Id,
    string Group,
    string Topic,
    int Partition,
    long Offset,
    string? Key,
    string KeyEncoding,
    string? Value,
    string ValueEncoding,
    string Error,
    string ErrorType,
    int Attempts,
    string? EventId,
    string? EventType,
    DateTimeOffset FailedAt)
{
    public static DeadLetter For(string group, string topic, int partition, long offset, byte[]? key, byte[]? value, Exception error, int attempts, CloudEvent? cloudEvent)
    {
        ArgumentNullException.ThrowIfNull(error);
        var (keyText, keyEncoding) = Encode(key);
        var (valueText, valueEncoding) = Encode(value);
        return new DeadLetter(
            Guid.CreateVersion7().ToString(),
            group,
            topic,
            partition,
            offset,
            keyText,
            keyEncoding,
            valueText,
            valueEncoding,
            error.Message,
            error.GetType().Name,
            attempts,
            cloudEvent?.Id,
            cloudEvent?.Type,
            DateTimeOffset.UtcNow);
    }

    /// <summary>The record for the dead-letter topic, keyed like the original so a partition's
    /// failures stay together.</summary>
    public EventRecord ToRecord() =>
        new(Id, Topics.DeadLetters.Name, Key ?? $"{Topic}-{Partition}", JsonSerializer.Serialize(this, EventSerializer.Options));

    internal static string? StrictUtf8(byte[]? bytes)
    {
        if (bytes is null)
        {
            return null;
        }

        try
        {
            return Utf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static (string? Text, string Encoding) Encode(byte[]? bytes) =>
        bytes is null ? (null, "none")
        : StrictUtf8(bytes) is { } text ? (text, "utf-8")
        : (Convert.ToBase64String(bytes), "base64");
}
