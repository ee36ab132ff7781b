using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging.Consuming;

/// <summary>The service's group member, where Kafka meets the database: consumes a batch per poll,
/// hands it to the <see cref="BatchProcessor"/>, and stores the offsets only after the batch's
/// transaction committed; librdkafka commits stored offsets in the background and on every
/// revocation and shutdown. A crash anywhere therefore re-delivers, and the processed-event record
/// turns the re-delivery into a no-op.</summary>
public sealed partial class ConsumerHost(
    ConsumerRegistration registration,
    BatchProcessor processor,
    Outbox.Outbox outbox,
    MessagingOptions options,
    Telemetry.MessagingMetrics metrics,
    ILogger<ConsumerHost> logger) : BackgroundLoop
{
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(100);
    private readonly FetchStallDetector _fetchStalls = new(options.FetchStallCheckInterval, TimeProvider.System);
    private FetchStallVerdict _fetchVerdict = FetchStallVerdict.None;
    private long _fetchRestarts;
    private long _fetchStatisticsSamples;

    public long Processed => processor.Processed;

    public long DeadLettered => processor.DeadLettered;

    /// <summary>Partitions fetched afresh because librdkafka had stopped fetching them.</summary>
    public long FetchRestarts => Interlocked.Read(ref _fetchRestarts);

    /// <summary>librdkafka statistics samples the fetch-stall check has read.</summary>
    public long FetchStatisticsSamples => Interlocked.Read(ref _fetchStatisticsSamples);

    /// <summary>The partitions this member owns now (physical topic names).</summary>
    public IReadOnlyList<TopicPartition> Assignment { get; private set; } = [];

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        var group = options.GroupId;
        using var consumer = Build(group);
        consumer.Subscribe(registration.Topics.Select(options.TopicName));
        LogStarted(group, string.Join(", ", registration.Topics));
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                RestartStalledPartitions(consumer);
                var batch = ConsumeBatch(consumer);
                if (batch.Count == 0)
                {
                    continue;
                }

                // One time for the batch: it was taken from librdkafka's queue all at once, just now.
                var fetchedAt = DateTimeOffset.UtcNow;

                // The batch in hand is finished even when shutdown begins meanwhile.
                if (!await processor.ProcessWithRetriesAsync(batch, fetchedAt, stoppingToken))
                {
                    break;
                }

                StoreOffsets(consumer, batch);

                outbox.Committed();
            }
        }
        finally
        {
            CommitStored(consumer, "shutdown");
            consumer.Close();
            LogStopped(group);
        }
    }

    /// <summary>Fetches afresh, from the application's position, each partition librdkafka's own
    /// statistics show it stopped fetching although the broker has data (seen once under sustained
    /// load on 0.9: a partition stopped being delivered until the process restarted). The decision
    /// is <see cref="FetchStallDetector"/>'s; a busy or lagging application is never "stalled", so
    /// prefetched data is not thrown away.</summary>
    private void RestartStalledPartitions(IConsumer<byte[], byte[]> consumer)
    {
        var verdict = _fetchVerdict;
        if (ReferenceEquals(verdict, FetchStallVerdict.None))
        {
            return;
        }

        _fetchVerdict = FetchStallVerdict.None;
        foreach (var lingering in verdict.Lingering)
        {
            var s = lingering.Statistics;
            LogFetchStateLingering(options.GroupId, s.Topic, s.Partition, s.FetchState, (long)lingering.For.TotalSeconds, s.NextOffset, s.CommittedOffset, s.HighOffset);
        }

        foreach (var stall in verdict.Stalled)
        {
            var s = stall.Statistics;
            var position = consumer.Position(s.TopicPartition).Value;
            var restartAt = position >= 0 ? position : s.AppOffset >= 0 ? s.AppOffset : s.CommittedOffset;
            LogStalled(options.GroupId, s.Topic, s.Partition, s.NextOffset, s.HighOffset, (long)stall.IdleFor.TotalSeconds, s.FetchQueueCount, s.AppOffset, restartAt);
            if (restartAt < 0)
            {
                continue;
            }

            try
            {
                consumer.Seek(new TopicPartitionOffset(s.TopicPartition, restartAt));
                Interlocked.Increment(ref _fetchRestarts);
            }
            catch (KafkaException e)
            {
                LogConsumeError(options.GroupId, e.Error.Reason);
            }
        }
    }

    /// <summary>librdkafka calls this from within Consume(), on the consuming thread: the verdict is
    /// acted on by the loop right after, never concurrently.</summary>
    private void OnStatistics(string json)
    {
        try
        {
            var partitions = PartitionFetchStatistics.Parse(json);
            metrics.ReportLag(partitions);
            var verdict = _fetchStalls.Observe(partitions, Assignment);
            Interlocked.Increment(ref _fetchStatisticsSamples);
            if (!ReferenceEquals(verdict, FetchStallVerdict.None))
            {
                _fetchVerdict = verdict;
            }
        }
        catch (JsonException e)
        {
            LogStatisticsUnreadable(options.GroupId, e.Message);
        }
    }

    private static void StoreOffsets(IConsumer<byte[], byte[]> consumer, List<ConsumeResult<byte[], byte[]>> batch)
    {
        foreach (var partition in batch.GroupBy(r => r.TopicPartition))
        {
            try
            {
                consumer.StoreOffset(new TopicPartitionOffset(partition.Key, partition.Max(r => r.Offset.Value) + 1));
            }
            catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_State)
            {
                // Revoked while the batch was in hand: its next owner reads these messages again
                // and finds them processed.
            }
        }
    }

    private List<ConsumeResult<byte[], byte[]>> ConsumeBatch(IConsumer<byte[], byte[]> consumer)
    {
        var batch = new List<ConsumeResult<byte[], byte[]>>();
        try
        {
            var timeout = PollTimeout;
            while (batch.Count < options.MaxBatchSize && consumer.Consume(timeout) is { } result)
            {
                if (!result.IsPartitionEOF)
                {
                    batch.Add(result);
                }

                timeout = TimeSpan.Zero;
            }
        }
        catch (ConsumeException e)
        {
            LogConsumeError(options.GroupId, e.Error.Reason);
        }

        return batch;
    }

    private IConsumer<byte[], byte[]> Build(string group)
    {
        var config = KafkaClientConfigs.Consumer(options.Connection(), group, $"{options.ServiceName}-{Environment.ProcessId}");
        // Stored offsets only (EnableAutoOffsetStore is off): what is committed is always covered
        // by a committed transaction; committing in the background keeps commits off the hot path.
        config.EnableAutoCommit = true;
        config.AutoCommitIntervalMs = 500;
        config.Debug = options.KafkaDebug;
        if (registration.IsObserver)
        {
            config.Observing();
        }

        // The fetch-stall check reads librdkafka's own view of each partition's fetcher: a few
        // samples per check interval.
        config.StatisticsIntervalMs = (int)Math.Clamp(options.FetchStallCheckInterval.TotalMilliseconds / 3, 100, 5_000);
        return new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler(KafkaLogs.ToLogger<IConsumer<byte[], byte[]>>(logger, verbose: options.KafkaDebug is not null))
            .SetErrorHandler((_, e) => LogConsumeError(group, e.Reason))
            .SetStatisticsHandler((_, json) => OnStatistics(json))
            .SetPartitionsAssignedHandler((c, partitions) =>
            {
                Assignment = [.. c.Assignment.Concat(partitions).Distinct()];
                LogAssigned(group, c.MemberId, Describe(partitions), Describe(Assignment));
            })
            .SetPartitionsRevokedHandler((c, partitions) =>
            {
                CommitStored(c, "revocation");
                Assignment = [.. c.Assignment.Except(partitions.Select(p => p.TopicPartition))];
                LogRevoked(group, c.MemberId, Describe(partitions.Select(p => p.TopicPartition)), Describe(Assignment));
            })
            .SetPartitionsLostHandler((c, partitions) =>
            {
                Assignment = [.. c.Assignment.Except(partitions.Select(p => p.TopicPartition))];
                LogLost(group, c.MemberId, Describe(partitions.Select(p => p.TopicPartition)));
            })
            .Build();
    }

    private void CommitStored(IConsumer<byte[], byte[]> consumer, string reason)
    {
        try
        {
            consumer.Commit();
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing stored since the last commit.
        }
        catch (KafkaException e)
        {
            LogCommitFailed(options.GroupId, reason, e.Error.Reason);
        }
    }

    private static string Describe(IEnumerable<TopicPartition> partitions)
    {
        var text = string.Join(" ", partitions.GroupBy(p => p.Topic).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key}[{string.Join(",", g.Select(p => p.Partition.Value).Order())}]"));
        return text.Length == 0 ? "(none)" : text;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: librdkafka has not fetched {Topic}/{Partition} from offset {NextOffset} for {IdleSeconds} s although the broker has data up to {End} (fetch queue {FetchQueueCount}, application at {AppOffset}); fetching it afresh from {RestartAt}")]
    private partial void LogStalled(string group, string topic, int partition, long nextOffset, long end, long idleSeconds, long fetchQueueCount, long appOffset, long restartAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: {Topic}/{Partition} has been in fetch state {FetchState} for {Seconds} s (next offset {NextOffset}, committed {CommittedOffset}, end {End})")]
    private partial void LogFetchStateLingering(string group, string topic, int partition, string fetchState, long seconds, long nextOffset, long committedOffset, long end);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: librdkafka's statistics could not be read: {Error}")]
    private partial void LogStatisticsUnreadable(string group, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: consuming {Topics}")]
    private partial void LogStarted(string group, string topics);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: left the group")]
    private partial void LogStopped(string group);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: member {Member} assigned {Partitions}; now owns {Assignment}")]
    private partial void LogAssigned(string group, string member, string partitions, string assignment);

    [LoggerMessage(Level = LogLevel.Information, Message = "Group {Group}: member {Member} revoked {Partitions}; now owns {Assignment}")]
    private partial void LogRevoked(string group, string member, string partitions, string assignment);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: member {Member} lost {Partitions} (session expired); they are re-delivered to their next owner")]
    private partial void LogLost(string group, string member, string partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: consume error: {Reason}")]
    private partial void LogConsumeError(string group, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group {Group}: committing offsets on {Reason} failed: {Error}")]
    private partial void LogCommitFailed(string group, string reason, string error);


}
