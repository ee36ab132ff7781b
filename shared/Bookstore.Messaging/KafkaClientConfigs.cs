using Confluent.Kafka;

namespace Bookstore.Messaging;

/// <summary>The suite's client settings, in one place. Everything broker-dependent comes from
/// <see cref="KafkaConnection.ApplyTo{T}"/>.</summary>
public static class KafkaClientConfigs
{
    /// <summary>A producer that loses no acknowledged write and keeps per-key order through retries.</summary>
    public static ProducerConfig Producer(KafkaConnection connection, string clientId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var config = connection.ApplyTo(new ProducerConfig
        {
            ClientId = clientId,
            Acks = Acks.All,
            // A few milliseconds of batching multiply throughput; a produce is never awaited alone.
            LingerMs = 5,
            MessageTimeoutMs = 120_000,
            // Bounded client memory: a service stays small under load.
            QueueBufferingMaxKbytes = 32 * 1024,
        });

        if (connection.Capabilities.IdempotentProducer)
        {
            // Retries can neither duplicate nor reorder a partition's records.
            config.EnableIdempotence = true;
        }
        else
        {
            // Without idempotence, one request in flight is what keeps a retried batch from
            // overtaking the next one; consumers deduplicate by event id for the duplicates.
            config.MaxInFlight = 1;
        }

        return config;
    }

    /// <summary>A group member that commits explicitly, after its work is durable.</summary>
    public static ConsumerConfig Consumer(KafkaConnection connection, string groupId, string clientId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return connection.ApplyTo(new ConsumerConfig
        {
            GroupId = groupId,
            ClientId = clientId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            // A dead member is noticed within seconds, so a rebalance is something one can watch.
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 1_000,
            // librdkafka's default (1 s) pauses fetching whenever the local queue fills up:
            // measured here, it costs 6-7x in throughput.
            FetchQueueBackoffMs = 10,
            // fetch.wait.max.ms stays at 0.5 s: a 0.9 broker answers one request per connection at a
            // time, so a fetch held longer delays the ListOffsets and metadata requests behind it, and a
            // newly assigned partition's first fetch (seen: 3 s made a just-started consumer miss a
            // 3 s deadline). Idle consumers cost the brokers a few percent of a core for it.
            QueuedMaxMessagesKbytes = 16 * 1024,
            // Per topic: every instance gets its share of each topic it reads, so three inventory
            // instances split book-orders two partitions each, as the course chapter draws it.
            // (Cooperative-sticky balances only the total count and may leave an instance without
            // any book-orders partition.)
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.Range,
        });
    }

    /// <summary>Makes <paramref name="config"/> a consumer that watches the saga rather than takes
    /// part in it (Analytics, the dashboard's tail): it fetches in large batches, at most about one
    /// fetch a second per broker instead of one per event. A broker's cost is per request, not per
    /// record, and a second's delay costs an observer nothing. Its prefetch queue is small: an
    /// observer that falls behind under load would otherwise fill the participants' 16 MB of
    /// records, which librdkafka keeps in native memory (measured: Analytics' peak RSS 252 → 202 MiB
    /// over 60,000 orders, with 2 MB).</summary>
    public static ConsumerConfig Observing(this ConsumerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.FetchWaitMaxMs = 1_000;
        config.FetchMinBytes = 1_000_000;
        config.QueuedMaxMessagesKbytes = 2 * 1024;
        // The queue's bound is checked before a fetch, not inside one: a lagging observer's fetch
        // brings up to this much from each partition it reads (≈ 9 per broker, 27 in all), held in
        // native memory until its last record is read (1 MB by default). Still above the minimum
        // on a broker that leads only 4 of them, so a lagging observer is not made to wait a second;
        // librdkafka doubles it for a partition whose next record does not fit.
        config.MaxPartitionFetchBytes = 256 * 1024;
        return config;
    }

    public static AdminClientConfig Admin(KafkaConnection connection, string clientId = "bookstore-admin")
    {
        ArgumentNullException.ThrowIfNull(connection);
        return connection.ApplyTo(new AdminClientConfig { ClientId = clientId });
    }
}
