using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Messaging;
using Bookstore.Messaging.Events;
using Confluent.Kafka;

namespace Bookstore.Analytics.Dashboard;

public sealed record TailEvent(DateTimeOffset At, string Topic, int Partition, long Offset, string? Key, string Type, string Source);

public sealed record TopicThroughput(string Topic, IReadOnlyList<long> PerSecond);

/// <summary>A record of the dead-letter topic: a message a group gave up on, or an outbox row a
/// service parked because no broker would take it.</summary>
public sealed record Problem(DateTimeOffset At, string Kind, string Who, string Where, string? Key, string Error);

/// <summary>What went to the dead-letter topic since the dashboard started, newest first.</summary>
public sealed record ProblemsView(long DeadLetters, long ParkedRows, IReadOnlyList<Problem> Recent);

/// <summary>Every partition of the seed topics read from its end by a consumer outside any group
/// (assigned, never committing): the dashboard's live tail, throughput and end offsets show every
/// event, whichever analytics instance owns which partitions, and disturb no group.</summary>
/// <remarks>Records are kept raw and parsed only when the page asks: at thousands of events per
/// second the tail costs a counter increment per record.</remarks>
public sealed partial class EventTail(MessagingOptions options, ILogger<EventTail> logger) : BackgroundLoop
{
    public const int Length = 60;
    public const int WindowSeconds = 300;

    private readonly Lock _lock = new();
    private readonly ConsumeResult<byte[], byte[]>?[] _recent = new ConsumeResult<byte[], byte[]>?[Length];
    private readonly DateTimeOffset[] _recentAt = new DateTimeOffset[Length];
    private readonly Dictionary<string, long[]> _perSecond = Topics.Seed.ToDictionary(t => t.Name, _ => new long[WindowSeconds]);
    private readonly long[] _bucketSecond = new long[WindowSeconds];
    private readonly Dictionary<(string Topic, int Partition), long> _endOffsets = [];
    private readonly Queue<(ConsumeResult<byte[], byte[]> Record, DateTimeOffset At)> _problems = new();
    private long _count;
    private long _deadLetters;
    private long _parkedRows;

    /// <summary>The newest dead letters and parked-row notices, and how many of each were seen.</summary>
    public ProblemsView Problems()
    {
        List<(ConsumeResult<byte[], byte[]> Record, DateTimeOffset At)> records;
        long deadLetters, parkedRows;
        lock (_lock)
        {
            records = [.. _problems.Reverse()];
            (deadLetters, parkedRows) = (_deadLetters, _parkedRows);
        }

        return new ProblemsView(deadLetters, parkedRows, [.. records.Select(r => DescribeProblem(r.Record, r.At))]);
    }

    /// <summary>The newest events, newest first.</summary>
    public IReadOnlyList<TailEvent> Recent()
    {
        List<(ConsumeResult<byte[], byte[]> Record, DateTimeOffset At)> records;
        lock (_lock)
        {
            records = [.. Enumerable.Range(0, (int)Math.Min(_count, Length))
                .Select(i => (int)((_count - 1 - i) % Length))
                .Select(i => (_recent[i]!, _recentAt[i]))];
        }

        return [.. records.Select(r => Describe(r.Record, r.At))];
    }

    /// <summary>Events per second and topic over the last <see cref="WindowSeconds"/> seconds, oldest first.</summary>
    public IReadOnlyList<TopicThroughput> Throughput()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        lock (_lock)
        {
            return [.. _perSecond.Select(topic => new TopicThroughput(
                topic.Key,
                [.. Enumerable.Range(0, WindowSeconds).Select(ago => now - WindowSeconds + 1 + ago)
                    .Select(second => _bucketSecond[second % WindowSeconds] == second ? topic.Value[second % WindowSeconds] : 0)]))];
        }
    }

    /// <summary>The end offset (high watermark) of a partition as last fetched; null before the first fetch.</summary>
    public long? EndOffset(string topic, int partition)
    {
        lock (_lock)
        {
            return _endOffsets.TryGetValue((topic, partition), out var end) ? end : null;
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stoppingToken)
    {
        var config = KafkaClientConfigs.Consumer(options.Connection(), $"{options.GroupId}-dashboard", $"{options.ServiceName}-dashboard-{Environment.ProcessId}");
        config.Observing();
        using var consumer = new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler(KafkaLogs.ToLogger<IConsumer<byte[], byte[]>>(logger))
            .Build();
        var partitions = Topics.Seed.Append(Topics.DeadLetters)
            .SelectMany(t => Enumerable.Range(0, t.Partitions).Select(p => new TopicPartition(options.TopicName(t.Name), p)))
            .ToList();
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.End)));
        LogStarted(partitions.Count);
        var nextWatermarks = 0L;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } record)
                {
                    Add(record);
                }

                if (Environment.TickCount64 >= nextWatermarks)
                {
                    nextWatermarks = Environment.TickCount64 + 500;
                    ReadWatermarks(consumer, partitions);
                }
            }
            catch (KafkaException e)
            {
                // A broker going away is something to show, not a reason to stop watching.
                LogConsumeError(e.Error.Reason);
            }
        }

        consumer.Close();
    }

    private void Add(ConsumeResult<byte[], byte[]> record)
    {
        var topic = options.LogicalTopicName(record.Topic);
        if (topic == Topics.DeadLetters.Name)
        {
            AddProblem(record);
            return;
        }

        var second = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var bucket = (int)(second % WindowSeconds);
        lock (_lock)
        {
            var slot = (int)(_count++ % Length);
            _recent[slot] = record;
            _recentAt[slot] = DateTimeOffset.UtcNow;
            if (_bucketSecond[bucket] != second)
            {
                _bucketSecond[bucket] = second;
                foreach (var counts in _perSecond.Values)
                {
                    counts[bucket] = 0;
                }
            }

            if (_perSecond.TryGetValue(topic, out var perSecond))
            {
                perSecond[bucket]++;
            }
        }
    }

    private void AddProblem(ConsumeResult<byte[], byte[]> record)
    {
        var parked = DescribeProblem(record, DateTimeOffset.UtcNow).Kind == ParkedKind;
        lock (_lock)
        {
            _problems.Enqueue((record, DateTimeOffset.UtcNow));
            if (_problems.Count > 20)
            {
                _problems.Dequeue();
            }

            if (parked)
            {
                _parkedRows++;
            }
            else
            {
                _deadLetters++;
            }
        }
    }

    private const string ParkedKind = "outbox row parked";

    private static Problem DescribeProblem(ConsumeResult<byte[], byte[]> record, DateTimeOffset at)
    {
        var key = record.Message.Key is null ? null : Encoding.UTF8.GetString(record.Message.Key);
        try
        {
            using var document = JsonDocument.Parse(record.Message.Value ?? []);
            var root = document.RootElement;
            if (Text(root, "kind") == Bookstore.Messaging.Outbox.ParkedNotice.KindName)
            {
                return new Problem(at, ParkedKind, Text(root, "service") ?? "?", $"{Text(root, "topic")} (outbox row {Number(root, "seq")}, {Number(root, "valueBytes")} bytes)", key, Text(root, "error") ?? "?");
            }

            var truncated = root.TryGetProperty("valueTruncated", out var t) && t.ValueKind == JsonValueKind.True ? " (value truncated)" : string.Empty;
            return new Problem(at, "dead letter", Text(root, "group") ?? "?", $"{Text(root, "topic")}/{Number(root, "partition")}@{Number(root, "offset")}{truncated}", key, Text(root, "error") ?? "?");
        }
        catch (JsonException)
        {
            return new Problem(at, "unreadable", "?", $"{record.Topic}/{record.Partition.Value}@{record.Offset.Value}", key, "not JSON");
        }
    }

    private static string Number(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetRawText() : "?";

    private void ReadWatermarks(IConsumer<byte[], byte[]> consumer, List<TopicPartition> partitions)
    {
        var ends = partitions
            .Select(p => (Partition: p, consumer.GetWatermarkOffsets(p).High))
            .Where(w => w.High.Value >= 0)
            .ToList();
        lock (_lock)
        {
            foreach (var (partition, high) in ends)
            {
                _endOffsets[(options.LogicalTopicName(partition.Topic), partition.Partition.Value)] = high.Value;
            }
        }
    }

    /// <summary>Type and source from the CloudEvent in the value; what is not one is shown as such.</summary>
    private TailEvent Describe(ConsumeResult<byte[], byte[]> record, DateTimeOffset at)
    {
        string type = "(not a CloudEvent)", source = "?";
        try
        {
            var cloudEvent = EventSerializer.Parse(record.Message.Value);
            (type, source) = (cloudEvent.Type, cloudEvent.Source);
        }
        catch (PoisonMessageException)
        {
            // Shown as it is: a poison message is worth seeing.
        }

        var key = record.Message.Key is null ? null : Encoding.UTF8.GetString(record.Message.Key);
        return new TailEvent(at, options.LogicalTopicName(record.Topic), record.Partition.Value, record.Offset.Value, key, type, source);
    }

    private static string? Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    [LoggerMessage(Level = LogLevel.Information, Message = "Dashboard tail: reading {Partitions} partitions from their end, outside any group")]
    private partial void LogStarted(int partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dashboard tail: consume error: {Reason}")]
    private partial void LogConsumeError(string reason);
}
