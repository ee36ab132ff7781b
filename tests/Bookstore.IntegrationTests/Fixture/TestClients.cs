using System.Diagnostics;
using Bookstore.Messaging;
using Confluent.Kafka;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>Produce and read back, the suite's client settings included.</summary>
public static class TestClients
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    public static IProducer<string, string> Producer(KafkaConnection connection) =>
        new ProducerBuilder<string, string>(KafkaClientConfigs.Producer(connection, "integration-test")).SetLogHandler(KafkaLogs.ToStandardError).Build();

    public static IConsumer<string, string> Consumer(KafkaConnection connection, string groupId, string clientId = "integration-test") =>
        new ConsumerBuilder<string, string>(KafkaClientConfigs.Consumer(connection, groupId, clientId)).SetLogHandler(KafkaLogs.ToStandardError).Build();

    /// <summary>Produces all messages at once (many in flight, no awaiting one by one) and returns
    /// their delivery reports in the order given; a failed delivery fails the test.</summary>
    public static async Task<IReadOnlyList<DeliveryResult<string, string>>> ProduceAllAsync(
        KafkaConnection connection, string topic, IEnumerable<(string Key, string Value)> messages)
    {
        using var producer = Producer(connection);
        var deliveries = messages.Select(m => producer.ProduceAsync(topic, new Message<string, string> { Key = m.Key, Value = m.Value })).ToList();
        return await Task.WhenAll(deliveries);
    }

    /// <summary>Reads every partition of <paramref name="topic"/> from its earliest retained offset
    /// to its current end, without a group (nothing is committed); later writes are left out.</summary>
    public static List<ConsumeResult<string, string>> ReadToEnd(KafkaConnection connection, string topic, int partitions)
    {
        using var consumer = Consumer(connection, "unused-assign-only");
        var marks = Enumerable.Range(0, partitions)
            .Select(p => new TopicPartition(topic, p))
            .ToDictionary(tp => tp, tp => consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)));
        consumer.Assign(marks.Keys.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));
        // What is there is high - low: a partition whose head retention has deleted starts above 0.
        var read = ConsumeAtLeast(consumer, (int)marks.Values.Sum(m => m.High.Value - m.Low.Value));
        return [.. read.Where(r => r.Offset.Value < marks[r.TopicPartition].High.Value)];
    }

    /// <summary>Consumes until <paramref name="count"/> messages arrived, or fails at the deadline.</summary>
    public static List<ConsumeResult<string, string>> ConsumeAtLeast(IConsumer<string, string> consumer, int count)
    {
        var read = new List<ConsumeResult<string, string>>();
        var clock = Stopwatch.StartNew();
        while (read.Count < count)
        {
            Assert.True(clock.Elapsed < Deadline, $"consumed {read.Count} of {count} messages within {Deadline}");
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } result)
            {
                read.Add(result);
            }
        }

        return read;
    }
}
