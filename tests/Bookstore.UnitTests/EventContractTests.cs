using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;

namespace Bookstore.UnitTests;

public sealed class EventContractTests
{
    private static readonly OrderPlaced Placed = new("ORD-1", "alice", [new OrderLine("978-0-13-468599-1", 2, 42.50m)], 85m);

    [Fact]
    public void Every_event_type_is_versioned_unique_and_lives_on_a_topic_of_the_table()
    {
        Assert.Equal(EventCatalog.All.Count, EventCatalog.All.Select(d => d.TypeName).Distinct().Count());
        Assert.All(EventCatalog.All, d =>
        {
            Assert.Matches(@"^bookstore\.[a-z-]+\.[a-z-]+\.v\d+$", d.TypeName);
            Assert.Contains(d.Topic, Topics.Seed);
            Assert.Same(d, EventCatalog.Find(d.TypeName));
        });
    }

    [Fact]
    public void Order_events_are_keyed_by_order_id_and_catalog_events_by_isbn()
    {
        Assert.Equal("ORD-1", EventCatalog.OrderPlaced.KeyOf(Placed));
        Assert.Equal("ORD-1", EventCatalog.PaymentFailed.KeyOf(new PaymentFailed("ORD-1", 1m, "declined")));
        Assert.Equal("978-0-13-468599-1", EventCatalog.BookPriceChanged.KeyOf(new BookPriceChanged("978-0-13-468599-1", "T", 1m, 3)));
        Assert.All(EventCatalog.All.Where(d => d.Topic == Topics.BookCatalogUpdates), d => Assert.StartsWith("bookstore.catalog.", d.TypeName, StringComparison.Ordinal));
    }

    [Fact]
    public void A_serialized_event_is_a_structured_mode_cloud_event()
    {
        var record = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed, "order-service");
        using var json = JsonDocument.Parse(record.Value);
        var root = json.RootElement;

        Assert.Equal(("book-orders", "ORD-1"), (record.Topic, record.Key));
        Assert.Equal("1.0", root.GetProperty("specversion").GetString());
        Assert.Equal(record.EventId, root.GetProperty("id").GetString());
        Assert.Equal("order-service", root.GetProperty("source").GetString());
        Assert.Equal("bookstore.order.placed.v1", root.GetProperty("type").GetString());
        Assert.Equal("ORD-1", root.GetProperty("subject").GetString());
        Assert.Equal("application/json", root.GetProperty("datacontenttype").GetString());
        Assert.True(root.TryGetProperty("time", out _));
        Assert.True(root.TryGetProperty("traceparent", out _));
        Assert.Equal(85m, root.GetProperty("data").GetProperty("total").GetDecimal());
    }

    [Fact]
    public void An_event_is_written_exactly_as_its_cloud_event_serializes_with_and_without_a_cause()
    {
        var awkward = new BookPriceChanged("978-0-13-468599-1", "Café & <Kafka> \"quoted\" \u2014 naïve", 12.5m, 3);
        var plain = EventSerializer.Serialize(EventCatalog.BookPriceChanged, awkward, "inventory-service");
        EventRecord caused;
        using (Bookstore.Messaging.Telemetry.EventCause.Enter(new Bookstore.Messaging.Telemetry.EventCause("cause-1", DateTimeOffset.UtcNow, null) { WorkQueuedAt = DateTimeOffset.UtcNow }))
        {
            caused = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed, "order-service");
        }

        foreach (var record in new[] { plain, caused })
        {
            Assert.Equal(JsonSerializer.Serialize(EventSerializer.Parse(record.Value), EventSerializer.Options), record.Value);
        }

        Assert.DoesNotContain("causationid", plain.Value, StringComparison.Ordinal);
        Assert.Contains("\"causationid\":\"cause-1\"", caused.Value, StringComparison.Ordinal);
        Assert.DoesNotContain("workstartedat", caused.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void An_event_reads_back_as_it_was_written()
    {
        var record = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed, "order-service");
        var cloudEvent = EventSerializer.Parse(record.Value);
        var data = (OrderPlaced)EventSerializer.ReadData(cloudEvent, EventCatalog.Find(cloudEvent.Type)!);

        Assert.Equal(Placed with { Lines = data.Lines }, data);
        Assert.Equal(Placed.Lines, data.Lines);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[1, 2]")]
    [InlineData("{\"specversion\": \"1.0\"}")]
    public void What_is_not_a_cloud_event_is_poison(string value) =>
        Assert.Throws<PoisonMessageException>(() => EventSerializer.Parse(value));

    [Fact]
    public void Data_that_does_not_fit_its_type_is_poison()
    {
        var cloudEvent = EventSerializer.Parse("{\"id\":\"1\",\"source\":\"t\",\"type\":\"bookstore.order.placed.v1\",\"data\":{\"lines\":\"many\"}}");
        Assert.Throws<PoisonMessageException>(() => EventSerializer.ReadData(cloudEvent, EventCatalog.OrderPlaced));
    }

    [Fact]
    public void A_dead_letter_keeps_the_original_and_says_where_it_came_from()
    {
        byte[] binary = [0xff, 0xfe, 0x00, 0x41];
        var letter = DeadLetter.For("inventory-service", "book-orders", 4, 1234, "ORD-9"u8.ToArray(), binary, new PoisonMessageException("bad"), 1, null);

        Assert.Equal(("ORD-9", "utf-8"), (letter.Key, letter.KeyEncoding));
        Assert.Equal((Convert.ToBase64String(binary), "base64"), (letter.Value, letter.ValueEncoding));
        Assert.Equal(("book-orders", 4, 1234L, "inventory-service"), (letter.Topic, letter.Partition, letter.Offset, letter.Group));
        Assert.Equal(("bad", nameof(PoisonMessageException), 1), (letter.Error, letter.ErrorType, letter.Attempts));
        var record = letter.ToRecord();
        Assert.Equal((Topics.DeadLetters.Name, "ORD-9"), (record.Topic, record.Key));
    }

    [Fact]
    public void A_namespace_prefixes_topics_and_groups_and_nothing_else()
    {
        var options = new MessagingOptions { ServiceName = "order-service", Namespace = "test-1." };
        Assert.Equal("test-1.order-service", options.GroupId);
        Assert.Equal("test-1.book-orders", options.TopicName("book-orders"));
        Assert.Equal("book-orders", options.LogicalTopicName("test-1.book-orders"));
        Assert.Equal("order-service", new MessagingOptions { ServiceName = "order-service" }.GroupId);
    }

    [Theory]
    [InlineData(42.5, 4250)]
    [InlineData(0.005, 1)]
    [InlineData(19.999, 2000)]
    public void Money_is_kept_in_whole_cents(decimal amount, long cents)
    {
        Assert.Equal(cents, Money.ToCents(amount));
        Assert.Equal(cents / 100m, Money.FromCents(Money.ToCents(amount)));
    }
}
