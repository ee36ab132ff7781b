using Bookstore.Messaging.Consuming;
using Confluent.Kafka;

namespace Bookstore.UnitTests;

/// <summary>The seek rule: only a partition librdkafka itself stopped fetching, with data waiting at
/// the broker, is restarted; a busy or lagging application never is. Samples arrive every 5 s and
/// the check interval is 15 s, as in the services.</summary>
public sealed class FetchStallDetectorTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan StatisticsInterval = TimeSpan.FromSeconds(5);
    private static readonly TopicPartition Orders0 = new("book-orders", 0);

    private readonly ManualClock _clock = new();
    private readonly FetchStallDetector _detector;

    public FetchStallDetectorTests() => _detector = new FetchStallDetector(Interval, _clock);

    [Fact]
    public void A_partition_far_behind_with_a_full_fetch_queue_and_a_busy_application_is_never_restarted()
    {
        // librdkafka's queue is full (fetching paused by design), the handler is slow: neither
        // the fetch position nor, for seconds at a time, the application's position moves, while
        // 100,000 messages wait at the broker.
        var sample = Statistics(next: 5_000, app: 1_000, high: 105_000, fetchQueue: 4_000);
        var restarts = Run(minutes: 5, _ => sample);

        Assert.Empty(restarts);
    }

    [Fact]
    public void A_partition_behind_whose_application_is_slowly_draining_the_queue_is_never_restarted()
    {
        var app = 1_000L;
        var restarts = Run(minutes: 5, _ => Statistics(next: 5_000, app: app += 1, high: 105_000, fetchQueue: 4_000 - (app - 1_000)));

        Assert.Empty(restarts);
    }

    [Fact]
    public void A_partition_not_fetched_although_data_waits_is_restarted_once_per_whole_interval()
    {
        var frozen = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0);

        Assert.Empty(Observe(frozen).Stalled);            // 0 s: first seen idle
        Assert.Empty(After(StatisticsInterval, frozen).Stalled); // 5 s
        Assert.Empty(After(StatisticsInterval, frozen).Stalled); // 10 s
        var stall = Assert.Single(After(StatisticsInterval, frozen).Stalled); // 15 s: a whole interval
        Assert.Equal(Orders0, stall.Statistics.TopicPartition);
        Assert.Equal(700, stall.Statistics.NextOffset);
        Assert.Equal(Interval, stall.IdleFor);

        Assert.Empty(After(StatisticsInterval, frozen).Stalled); // 20 s
        Assert.Empty(After(StatisticsInterval, frozen).Stalled); // 25 s
        Assert.Single(After(StatisticsInterval, frozen).Stalled); // 30 s: still frozen a whole interval later
    }

    [Fact]
    public void A_partition_that_fetches_again_within_the_interval_is_not_restarted()
    {
        Assert.Empty(Observe(Statistics(next: 700, app: 700, high: 900, fetchQueue: 0)).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), Statistics(next: 700, app: 700, high: 900, fetchQueue: 0)).Stalled);
        Assert.Empty(After(StatisticsInterval, Statistics(next: 900, app: 800, high: 950, fetchQueue: 100)).Stalled);

        // Idle again from here: a whole interval is counted afresh.
        Assert.Empty(After(StatisticsInterval, Statistics(next: 950, app: 950, high: 990, fetchQueue: 0)).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), Statistics(next: 950, app: 950, high: 990, fetchQueue: 0)).Stalled);
        Assert.Single(After(StatisticsInterval, Statistics(next: 950, app: 950, high: 990, fetchQueue: 0)).Stalled);
    }

    [Fact]
    public void A_caught_up_partition_is_never_restarted()
    {
        var restarts = Run(minutes: 5, _ => Statistics(next: 900, app: 900, high: 900, fetchQueue: 0));

        Assert.Empty(restarts);
    }

    [Fact]
    public void A_revoked_partition_is_never_restarted()
    {
        var frozen = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0);
        var restarts = Run(minutes: 5, _ => frozen, assignment: []);

        Assert.Empty(restarts);
    }

    [Fact]
    public void A_partition_revoked_mid_interval_starts_afresh_when_assigned_again()
    {
        var frozen = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0);
        Assert.Empty(Observe(frozen).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), frozen, assignment: []).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), frozen).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), frozen).Stalled);
        Assert.Single(After(StatisticsInterval, frozen).Stalled);
    }

    [Theory]
    [InlineData("offset-query")]
    [InlineData("offset-wait")]
    [InlineData("stopped")]
    [InlineData("none")]
    public void A_partition_not_actively_fetched_is_never_restarted_but_a_lingering_state_is_reported(string fetchState)
    {
        var sample = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0) with { FetchState = fetchState };
        var verdicts = Samples(minutes: 1, _ => sample);

        Assert.Empty(verdicts.SelectMany(v => v.Stalled));
        var lingering = verdicts.SelectMany(v => v.Lingering).ToList();
        Assert.Equal(4, lingering.Count); // at 15, 30, 45 and 60 s
        Assert.All(lingering, l => Assert.Equal(fetchState, l.Statistics.FetchState));
    }

    [Fact]
    public void A_partition_becoming_active_is_watched_for_a_whole_interval_from_then()
    {
        var waiting = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0) with { FetchState = "offset-wait" };
        var frozen = Statistics(next: 700, app: 700, high: 900, fetchQueue: 0);
        Assert.Empty(Observe(waiting).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), waiting).Stalled);
        Assert.Empty(After(StatisticsInterval, frozen).Stalled);
        Assert.Empty(After(TimeSpan.FromSeconds(10), frozen).Stalled);
        Assert.Single(After(StatisticsInterval, frozen).Stalled);
    }

    [Fact]
    public void Statistics_are_read_per_partition_and_the_unassigned_partition_is_skipped()
    {
        const string json = """
            { "name": "c#consumer-1", "type": "consumer", "ts": 1,
              "brokers": { "127.0.0.1:9392/0": { "toppars": { "book-orders-0": { "topic": "book-orders", "partition": 0 } } } },
              "topics": {
                "book-orders": { "topic": "book-orders", "metadata_age": 10,
                  "batchsize": { "min": 0, "max": 0 },
                  "partitions": {
                    "0": { "partition": 0, "broker": 0, "leader": 0, "desired": true, "unknown": false, "fetchq_cnt": 12, "fetchq_size": 3400,
                           "fetch_state": "active", "query_offset": -1001, "next_offset": 820, "app_offset": 808, "stored_offset": 808,
                           "committed_offset": 800, "eof_offset": -1001, "lo_offset": 0, "hi_offset": 900, "consumer_lag": 100 },
                    "-1": { "partition": -1, "fetchq_cnt": 0, "fetch_state": "none", "next_offset": 0, "app_offset": -1001, "hi_offset": -1001 }
                  } } },
              "cgrp": { "state": "up", "rebalance_cnt": 1 } }
            """;

        var partition = Assert.Single(PartitionFetchStatistics.Parse(json));

        Assert.Equal(new PartitionFetchStatistics("book-orders", 0, "active", 12, 3400, 820, 808, 800, 900, 100), partition);
    }

    private List<FetchStall> Run(int minutes, Func<int, PartitionFetchStatistics> sample, TopicPartition[]? assignment = null) =>
        [.. Samples(minutes, sample, assignment).SelectMany(v => v.Stalled)];

    private List<FetchStallVerdict> Samples(int minutes, Func<int, PartitionFetchStatistics> sample, TopicPartition[]? assignment = null)
    {
        var verdicts = new List<FetchStallVerdict> { Observe(sample(0), assignment) };
        for (var i = 1; i <= minutes * 60 / StatisticsInterval.TotalSeconds; i++)
        {
            verdicts.Add(After(StatisticsInterval, sample(i), assignment));
        }

        return verdicts;
    }

    private FetchStallVerdict After(TimeSpan elapsed, PartitionFetchStatistics sample, TopicPartition[]? assignment = null)
    {
        _clock.Advance(elapsed);
        return Observe(sample, assignment);
    }

    private FetchStallVerdict Observe(PartitionFetchStatistics sample, TopicPartition[]? assignment = null) =>
        _detector.Observe([sample], assignment ?? [Orders0]);

    private static PartitionFetchStatistics Statistics(long next, long app, long high, long fetchQueue) =>
        new(Orders0.Topic, Orders0.Partition.Value, PartitionFetchStatistics.ActiveFetchState, fetchQueue, fetchQueue * 300, next, app, app, high, high - app);

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
