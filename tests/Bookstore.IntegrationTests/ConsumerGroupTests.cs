using System.Collections.Concurrent;
using System.Globalization;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Confluent.Kafka;

namespace Bookstore.IntegrationTests;

/// <summary>Seed §5 "Consumers" and §6 "Consumer groups": committed offsets, publish/subscribe
/// between groups, a work queue within one.</summary>
[Collection(KafkaCollection.Name)]
public sealed class ConsumerGroupTests(KafkaClusterFixture fixture)
{
    [Fact]
    public async Task A_restarted_group_member_resumes_from_the_committed_offset()
    {
        const int Partitions = 3;
        var topic = await fixture.CreateTopicAsync("resume", Partitions);
        var group = fixture.GroupId("resume");
        await TestClients.ProduceAllAsync(fixture.Connection, topic, Numbered(90));

        // First life: read 60 messages, but commit only what the first 40 of them cover.
        List<ConsumeResult<string, string>> firstLife;
        List<TopicPartitionOffset> committed;
        using (var consumer = TestClients.Consumer(fixture.Connection, group))
        {
            consumer.Subscribe(topic);
            firstLife = TestClients.ConsumeAtLeast(consumer, 60);
            committed = [.. firstLife.Take(40)
                .GroupBy(r => r.TopicPartition)
                .Select(g => new TopicPartitionOffset(g.Key, g.Max(r => r.Offset.Value) + 1))];
            consumer.Commit(committed);
            consumer.Close();
        }

        // Second life: everything at or after the committed offsets, exactly once; nothing before.
        var committedAt = committed.ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
        var all = TestClients.ReadToEnd(fixture.Connection, topic, Partitions);
        var expected = all.Where(r => r.Offset.Value >= committedAt.GetValueOrDefault(r.TopicPartition, 0)).Select(r => r.Message.Value).Order().ToList();
        using (var consumer = TestClients.Consumer(fixture.Connection, group))
        {
            consumer.Subscribe(topic);
            var secondLife = TestClients.ConsumeAtLeast(consumer, expected.Count);
            Assert.Equal(expected, secondLife.Select(r => r.Message.Value).Order());
            AssertAtEnd(consumer, all, committedAt);
            consumer.Close();
        }

        Assert.Equal(50, expected.Count);
        Assert.Equal(20, firstLife.Skip(40).Count(r => expected.Contains(r.Message.Value)));
    }

    [Fact]
    public async Task Two_groups_each_get_every_message()
    {
        var topic = await fixture.CreateTopicAsync("pubsub", 3);
        var sent = Numbered(50).ToList();
        await TestClients.ProduceAllAsync(fixture.Connection, topic, sent);

        foreach (var service in new[] { "inventory", "analytics" })
        {
            using var consumer = TestClients.Consumer(fixture.Connection, fixture.GroupId($"pubsub-{service}"));
            consumer.Subscribe(topic);
            var received = TestClients.ConsumeAtLeast(consumer, sent.Count);
            Assert.Equal(sent.Select(m => m.Value).Order(), received.Select(r => r.Message.Value).Order());
            consumer.Close();
        }
    }

    [Fact]
    public async Task Members_of_one_group_split_the_partitions_and_members_beyond_the_partition_count_sit_idle()
    {
        const int Partitions = 3;
        const int Members = 4;
        var topic = await fixture.CreateTopicAsync("workqueue", Partitions);
        var group = fixture.GroupId("workqueue");
        var assignments = new ConcurrentDictionary<int, List<int>>();
        var received = new ConcurrentDictionary<int, ConcurrentBag<string>>();
        using var stop = new CancellationTokenSource();

        var members = Enumerable.Range(0, Members).Select(member => Task.Run(() =>
        {
            received[member] = [];
            var config = KafkaClientConfigs.Consumer(fixture.Connection, group, $"worker-{member}");
            using var consumer = new ConsumerBuilder<string, string>(config)
                .SetLogHandler(KafkaLogs.ToStandardError)
                // Handlers get what is added or taken away (all of it, with an eager assignor).
                .SetPartitionsAssignedHandler((_, added) => assignments[member] = [.. assignments.GetValueOrDefault(member, []).Union(added.Select(tp => tp.Partition.Value))])
                .SetPartitionsRevokedHandler((_, revoked) => assignments[member] = [.. assignments.GetValueOrDefault(member, []).Except(revoked.Select(tp => tp.Partition.Value))])
                .Build();
            consumer.Subscribe(topic);
            while (!stop.IsCancellationRequested)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } result)
                {
                    received[member].Add(result.Message.Value);
                    consumer.Commit(result);
                }
            }

            consumer.Close();
        })).ToList();

        try
        {
            // Every member has had its assignment (an idle one gets an empty one) in the same generation.
            var balanced = await Poll.UntilAsync(
                () => assignments.Count == Members
                    && assignments.Values.SelectMany(a => a).Order().SequenceEqual(Enumerable.Range(0, Partitions))
                    && assignments.Values.Count(a => a.Count == 0) == Members - Partitions,
                TestClients.Deadline);
            Assert.True(balanced, $"3 partitions over 4 members, one idle; saw {Describe(assignments)}");

            var sent = Numbered(60).ToList();
            await TestClients.ProduceAllAsync(fixture.Connection, topic, sent);
            var all = await Poll.UntilAsync(() => received.Values.Sum(r => r.Count) >= sent.Count, TestClients.Deadline);
            Assert.True(all, $"the members received {received.Values.Sum(r => r.Count)} of {sent.Count} messages");

            Assert.Equal(sent.Select(m => m.Value).Order(), received.Values.SelectMany(r => r).Order());
            var idle = assignments.Single(a => a.Value.Count == 0).Key;
            Assert.Empty(received[idle]);
            Assert.Equal(Partitions, received.Count(r => !r.Value.IsEmpty));
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(members);
        }
    }

    [Fact]
    public async Task A_look_without_lag_names_the_same_members_and_partitions_and_closes_the_groups_offset_reader()
    {
        const int Partitions = 3;
        var topic = await fixture.CreateTopicAsync("inspect", Partitions);
        var group = fixture.GroupId("inspect");
        await TestClients.ProduceAllAsync(fixture.Connection, topic, Numbered(30));
        using var consumer = TestClients.Consumer(fixture.Connection, group);
        consumer.Subscribe(topic);
        var read = TestClients.ConsumeAtLeast(consumer, 10);
        consumer.Commit([.. read.GroupBy(r => r.TopicPartition).Select(g => new TopicPartitionOffset(g.Key, g.Max(r => r.Offset.Value) + 1))]);

        using var inspector = new ConsumerGroupInspector(fixture.Connection, "inspect-test");
        GroupStatus? withLag = null;
        var settled = await Poll.UntilAsync(
            async _ =>
            {
                try
                {
                    withLag = (await inspector.DescribeAsync([group])).Single();
                    return withLag.State == "Stable" && withLag.Members.Count == 1 && withLag.Members[0].Partitions.Count == Partitions;
                }
                catch (KafkaException)
                {
                    return false;
                }
            },
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(250));
        Assert.True(settled, $"one member owning {Partitions} partitions of {topic}");
        Assert.All(withLag!.Members[0].Partitions, p => Assert.NotNull(p.Lag));
        Assert.Equal(30 - read.Count, withLag.TotalLag);
        Assert.Equal(1, inspector.OffsetReaders);

        var withoutLag = (await inspector.DescribeAsync([group], withLag: false)).Single();
        Assert.Equal(withLag.Members.Select(m => m.MemberId), withoutLag.Members.Select(m => m.MemberId));
        Assert.Equal(withLag.Members[0].Partitions.Select(p => p.Partition), withoutLag.Members[0].Partitions.Select(p => p.Partition));
        Assert.All(withoutLag.Members[0].Partitions, p => Assert.Null(p.Lag));
        Assert.Equal(0, inspector.OffsetReaders);
        consumer.Close();
    }

    private static IEnumerable<(string Key, string Value)> Numbered(int count) =>
        Enumerable.Range(0, count).Select(i => ($"key-{i % 7}", i.ToString("D4", CultureInfo.InvariantCulture)));

    /// <summary>The member's position is the end of every partition: nothing is left unread. A
    /// partition it read nothing from is still at its committed offset.</summary>
    private static void AssertAtEnd(IConsumer<string, string> consumer, List<ConsumeResult<string, string>> all, Dictionary<TopicPartition, long> committedAt)
    {
        foreach (var partition in all.GroupBy(r => r.TopicPartition))
        {
            var position = consumer.Position(partition.Key);
            var at = position == Offset.Unset ? committedAt.GetValueOrDefault(partition.Key, 0) : position.Value;
            Assert.Equal(partition.Max(r => r.Offset.Value) + 1, at);
        }
    }

    private static string Describe(ConcurrentDictionary<int, List<int>> assignments) =>
        string.Join("; ", assignments.OrderBy(a => a.Key).Select(a => $"worker-{a.Key}: [{string.Join(",", a.Value)}]"));
}
