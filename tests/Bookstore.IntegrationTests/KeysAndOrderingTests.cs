using Bookstore.Contracts;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Confluent.Kafka;

namespace Bookstore.IntegrationTests;

/// <summary>Seed §4 "Partitions" and §5 "Producers": the key picks the partition, and a partition
/// is an ordered log.</summary>
[Collection(KafkaCollection.Name)]
public sealed class KeysAndOrderingTests(KafkaClusterFixture fixture)
{
    [Fact]
    public async Task Same_key_lands_on_the_same_partition_in_the_order_sent()
    {
        const int Partitions = 6;
        var topic = await fixture.CreateTopicAsync("keys", Partitions);
        var orders = Enumerable.Range(1, 12).Select(i => $"ORD-{i:D5}").ToList();
        var sent = orders.SelectMany(order => Enumerable.Range(0, 25).Select(seq => (Key: order, Value: seq.ToString(System.Globalization.CultureInfo.InvariantCulture)))).ToList();

        var deliveries = await TestClients.ProduceAllAsync(fixture.Connection, topic, sent);

        var partitionOf = deliveries.GroupBy(d => d.Message.Key).ToDictionary(g => g.Key, g => g.Select(d => d.Partition.Value).Distinct().ToList());
        Assert.All(partitionOf, kv => Assert.Single(kv.Value));
        Assert.True(partitionOf.Values.Select(p => p[0]).Distinct().Count() > 1, "twelve keys spread over more than one partition");

        // Read back from the brokers, not from the producer's reports: each key's records sit on the
        // one partition its deliveries named, at the offsets they named, in the order sent.
        var read = TestClients.ReadToEnd(fixture.Connection, topic, Partitions);
        Assert.Equal(sent.Count, read.Count);
        foreach (var order in orders)
        {
            var ofOrder = read.Where(r => r.Message.Key == order).ToList();
            var delivered = deliveries.Where(d => d.Message.Key == order).ToList();
            Assert.Equal([partitionOf[order][0]], ofOrder.Select(r => r.Partition.Value).Distinct());
            Assert.Equal(Enumerable.Range(0, 25).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), ofOrder.Select(r => r.Message.Value));
            Assert.Equal(delivered.Select(d => d.Offset.Value), ofOrder.Select(r => r.Offset.Value));
            Assert.True(ofOrder.Select(r => r.Offset.Value).SequenceEqual(ofOrder.Select(r => r.Offset.Value).Order()), $"offsets of {order} increase");
        }
    }

    [Fact]
    public async Task Acks_all_to_a_replication_factor_3_topic_is_acknowledged_by_the_in_sync_replicas()
    {
        var expectedReplicas = Math.Min(TopicSpec.DefaultReplicationFactor, fixture.Cluster.BrokerIds.Count);
        var topic = await fixture.CreateTopicAsync("acks", 3);
        var snapshot = ClusterSnapshot.Read(fixture.Connection, TimeSpan.FromSeconds(10));
        Assert.All(snapshot.Topic(topic)!.Partitions, p =>
        {
            Assert.Equal(expectedReplicas, p.Replicas.Count);
            Assert.Equal(p.Replicas.Order(), p.InSyncReplicas.Order());
        });

        var config = KafkaClientConfigs.Producer(fixture.Connection, "acks-test");
        Assert.Equal(Acks.All, config.Acks);
        var sent = Enumerable.Range(0, 100).Select(i => ($"k{i}", $"v{i}")).ToList();
        var deliveries = await TestClients.ProduceAllAsync(fixture.Connection, topic, sent);

        Assert.All(deliveries, d => Assert.Equal(PersistenceStatus.Persisted, d.Status));

        // Acknowledged means in the log: every record is read back from the partition and offset
        // its acknowledgement gave, with the key and value sent, and nothing else is there.
        var read = TestClients.ReadToEnd(fixture.Connection, topic, 3).ToDictionary(r => (r.Partition.Value, r.Offset.Value));
        Assert.Equal(sent.Count, read.Count);
        for (var i = 0; i < sent.Count; i++)
        {
            var at = (deliveries[i].Partition.Value, deliveries[i].Offset.Value);
            Assert.True(read.TryGetValue(at, out var record), $"{sent[i]} acknowledged at {at} is in the log");
            Assert.Equal(sent[i], (record!.Message.Key, record.Message.Value));
        }
    }

    [Fact]
    public void Every_topic_of_the_table_exists_with_its_partitions_and_replication()
    {
        var brokers = fixture.Cluster.BrokerIds.Count;
        var snapshot = ClusterSnapshot.Read(fixture.Connection, TimeSpan.FromSeconds(10));

        Assert.All(Topics.All, declared =>
        {
            var topic = snapshot.Topic(declared.Name);
            Assert.NotNull(topic);
            Assert.Equal(declared.Partitions, topic.Partitions.Count);
            Assert.Equal(declared.CappedTo(brokers).ReplicationFactor, topic.ReplicationFactor);
            Assert.All(topic.Partitions, p => Assert.True(p.HasLeader, $"{declared.Name}/{p.Id} has a leader"));
        });
    }
}
