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
            DateTimeOffset.UtcNow)
        {
            ValueBytes = value?.LongLength,
        };
    }

    /// <summary>Set when <see cref="Value"/> holds only the start of the original value, which was
    /// too large for a dead letter; the whole value is still at its topic, partition and offset.</summary>
    public bool ValueTruncated { get; init; }

    /// <summary>The original value's size in bytes.</summary>
    public long? ValueBytes { get; init; }

    /// <summary>The record for the dead-letter topic, keyed like the original so a partition's
    /// failures stay together. A value that would make the record larger than
    /// <paramref name="maxBytes"/> (JSON escaping can multiply it by six) is cut to fit, and the
    /// letter says so, rather than leaving a record no broker accepts.</summary>
    public EventRecord ToRecord(int maxBytes = 1_000_000)
    {
        var key = Key ?? $"{Topic}-{Partition}";
        // Room for the key and the record's framing.
        var budget = maxBytes - Encoding.UTF8.GetByteCount(key) - 512;
        var letter = this;
        var json = JsonSerializer.Serialize(letter, EventSerializer.Options);
        var size = Encoding.UTF8.GetByteCount(json);
        while (size > budget && letter.Value is { Length: > 0 } value)
        {
            // Shrink in proportion to the overshoot (escaping is uneven, so repeat until it fits).
            var keep = (int)Math.Max(0, Math.Min(value.Length - 1, (long)value.Length * (budget - 1024) / size));
            if (keep > 0 && char.IsHighSurrogate(value[keep - 1]))
            {
                keep--;
            }

            letter = letter with { Value = value[..keep], ValueTruncated = true, };
            json = JsonSerializer.Serialize(letter, EventSerializer.Options);
            size = Encoding.UTF8.GetByteCount(json);
        }

        return new(Id, Topics.DeadLetters.Name, key, json);
    }

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
