using Bookstore.Contracts;
using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Bookstore.Messaging;

/// <summary>Creates topics from <see cref="TopicSpec"/>s through the CreateTopics API (Kafka 0.10.1+).
/// A 0.9 cluster has no such API: its topics come from Kafka's own TopicCommand (the local cluster).</summary>
public static class TopicAdmin
{
    public static async Task EnsureTopicsAsync(KafkaConnection connection, IReadOnlyCollection<TopicSpec> topics, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(topics);
        if (!connection.Capabilities.AdminTopicApis)
        {
            throw new NotSupportedException($"Kafka {connection.BrokerVersion} has no CreateTopics API: create topics with Kafka's TopicCommand (./bookstore kafka up does).");
        }

        using var admin = new AdminClientBuilder(KafkaClientConfigs.Admin(connection)).SetLogHandler(KafkaLogs.ToStandardError).Build();
        var brokerCount = admin.GetMetadata(timeout).Brokers.Count;
        var specifications = topics
            .Select(t => t.CappedTo(brokerCount))
            .Select(t => new TopicSpecification
            {
                Name = t.Name,
                NumPartitions = t.Partitions,
                ReplicationFactor = (short)t.ReplicationFactor,
                Configs = t.Configs().ToDictionary(),
            })
            .ToList();
        try
        {
            await admin.CreateTopicsAsync(specifications, new CreateTopicsOptions { RequestTimeout = timeout });
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
        {
            // Already there: creating is idempotent.
        }

        await WaitForLeadersAsync(connection, topics.Select(t => t.Name).ToList(), timeout);
    }

    public static async Task DeleteTopicsAsync(KafkaConnection connection, IReadOnlyCollection<string> topics, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var admin = new AdminClientBuilder(KafkaClientConfigs.Admin(connection)).SetLogHandler(KafkaLogs.ToStandardError).Build();
        try
        {
            await admin.DeleteTopicsAsync(topics, new DeleteTopicsOptions { RequestTimeout = timeout });
        }
        catch (DeleteTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.UnknownTopicOrPart))
        {
            // Already gone.
        }
    }

    /// <summary>Waits until every partition of <paramref name="topics"/> has a leader.</summary>
    public static async Task WaitForLeadersAsync(KafkaConnection connection, IReadOnlyCollection<string> topics, TimeSpan timeout)
    {
        using var metadata = new ClusterMetadataReader(connection);
        var ready = await Poll.UntilAsync(
            () => metadata.TryRead(TimeSpan.FromSeconds(5)) is { } snapshot
                && topics.All(n => snapshot.Topic(n) is { Partitions.Count: > 0 } t && t.Partitions.All(p => p.HasLeader)),
            timeout);
        if (!ready)
        {
            throw new TimeoutException($"Topics {string.Join(", ", topics)} have no leader for every partition after {timeout.TotalSeconds} s.");
        }
    }
}
