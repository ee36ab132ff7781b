using System.Text;
using Bookstore.Contracts;
using Bookstore.Messaging;
using Bookstore.Messaging.Events;

namespace Bookstore.UnitTests;

public sealed class ContentTypeHeaderTests
{
    [Fact]
    public void A_0_9_broker_gets_no_headers_at_all()
    {
        Assert.Null(ContentTypeHeader.For(KafkaCapabilities.Legacy, Topics.BookOrders.Name));
        Assert.Null(ContentTypeHeader.For(new KafkaConnection("127.0.0.1:9092", "0.9.0.1").Capabilities, Topics.DeadLetters.Name));
    }

    [Fact]
    public void Events_on_a_broker_with_headers_are_marked_as_structured_cloudevents()
    {
        var capabilities = new KafkaConnection("127.0.0.1:9092").Capabilities;
        foreach (var topic in Topics.Seed)
        {
            var headers = ContentTypeHeader.For(capabilities, topic.Name);
            Assert.NotNull(headers);
            var header = Assert.Single(headers);
            Assert.Equal("content-type", header.Key);
            Assert.Equal("application/cloudevents+json", Encoding.UTF8.GetString(header.GetValueBytes()));
        }
    }

    [Fact]
    public void Dead_letters_are_plain_json_not_cloudevents()
    {
        var headers = ContentTypeHeader.For(KafkaCapabilities.Modern, Topics.DeadLetters.Name);
        Assert.NotNull(headers);
        Assert.Equal("application/json", Encoding.UTF8.GetString(Assert.Single(headers).GetValueBytes()));
    }
}
