using System.Text;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;

namespace Bookstore.UnitTests;

/// <summary>Every consumer (the consumer host, Analytics' replay, the dashboard's tail) reads a
/// record's value the same way, so a replay can never record what the live consumer dead-lettered.</summary>
public sealed class EventReadingTests
{
    private static byte[] Valid() =>
        Encoding.UTF8.GetBytes(EventSerializer.Serialize(EventCatalog.OrderCancelled, new OrderCancelled("ORD-1", "alice", "timeout"), "test").Value);

    [Fact]
    public void An_event_of_the_catalog_is_read_with_its_definition()
    {
        var (cloudEvent, definition) = EventSerializer.ReadKnown(Valid());

        Assert.Same(EventCatalog.OrderCancelled, definition);
        Assert.Equal("test", cloudEvent.Source);
    }

    [Fact]
    public void A_value_with_invalid_utf8_is_refused_not_read_with_replacement_characters()
    {
        var bytes = Valid();
        var at = Array.IndexOf(bytes, (byte)'t', Encoding.UTF8.GetString(bytes).IndexOf("\"test\"", StringComparison.Ordinal));
        bytes[at] = 0xFF; // inside the source string, so a lenient decoder would still see a whole CloudEvent

        var refused = Assert.Throws<PoisonMessageException>(() => EventSerializer.ReadKnown(bytes));
        Assert.Contains("UTF-8", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_value_of_white_space_or_not_a_cloud_event_is_refused_saying_which()
    {
        Assert.Contains("no value", Assert.Throws<PoisonMessageException>(() => EventSerializer.ReadKnown(" \r\n\t "u8.ToArray())).Message, StringComparison.Ordinal);
        Assert.Contains("not a CloudEvent", Assert.Throws<PoisonMessageException>(() => EventSerializer.ReadKnown("{ this is not json"u8.ToArray())).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_event_type_the_catalog_does_not_know_is_refused()
    {
        var text = Encoding.UTF8.GetString(Valid()).Replace(EventCatalog.OrderCancelled.TypeName, "com.example.unknown", StringComparison.Ordinal);

        var refused = Assert.Throws<PoisonMessageException>(() => EventSerializer.ReadKnown(Encoding.UTF8.GetBytes(text)));
        Assert.Contains("Unknown event type", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_type_is_peeked_at_the_top_level_and_only_when_the_value_names_exactly_one()
    {
        Assert.Equal(EventCatalog.OrderCancelled.TypeName, EventSerializer.PeekType(Valid()));
        Assert.Equal("outer", Peek("""{"data":{"type":"inner"},"type":"outer"}"""));
        Assert.Equal("escaped", Peek("""{"ty\u0070e":"escaped"}"""));

        Assert.Null(Peek("""{"type":"one","TYPE":"two"}"""));
        Assert.Null(Peek("""{"type":"one"} {"type":"two"}"""));
        Assert.Null(Peek("""{"type":1}"""));
        Assert.Null(Peek("""{"data":{"type":"inner"}}"""));
        Assert.Null(Peek("""["type","list"]"""));
        Assert.Null(Peek("""{"type":"cut"""));
        Assert.Null(Peek("<not an event>"));
        Assert.Null(EventSerializer.PeekType([.. Encoding.UTF8.GetBytes("{\"type\":\""), 0xFF, .. Encoding.UTF8.GetBytes("\"}")]));
    }

    private static string? Peek(string value) => EventSerializer.PeekType(Encoding.UTF8.GetBytes(value));
}
