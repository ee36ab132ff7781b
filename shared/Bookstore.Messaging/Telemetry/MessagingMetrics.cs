using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Storage;
using Dapper;

namespace Bookstore.Messaging.Telemetry;

/// <summary>The messaging library's metrics (meter <c>Bookstore.Messaging</c>), named by the
/// OpenTelemetry semantic conventions where they have a name, <c>bookstore.*</c> where not.
/// Recorded per batch where a batch exists; the gauges are read when scraped.</summary>
public sealed class MessagingMetrics
{
    public const string MeterName = "Bookstore.Messaging";

    private readonly Meter _meter;
    private readonly ServiceDatabase _database;
    private readonly MessagingOptions _options;
    private readonly Counter<long> _consumed;
    private readonly Counter<long> _events;
    private readonly Histogram<double> _processDuration;
    private readonly Histogram<double> _batchDuration;
    private readonly Counter<long> _sent;
    private readonly Histogram<double> _publishDuration;
    private readonly Counter<long> _parked;
    private readonly KeyValuePair<string, object?> _group;
    private IReadOnlyList<PartitionFetchStatistics> _lag = [];
    private (long Rows, double OldestAgeSeconds, long ReadAt) _backlog = (0, 0, long.MinValue);

    public MessagingMetrics(IMeterFactory meters, ServiceDatabase database, MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _database = database;
        _options = options;
        _group = new(MessagingTelemetry.ConsumerGroup, options.GroupId);
        _meter = meters.Create(MeterName);
        _consumed = _meter.CreateCounter<long>("messaging.client.consumed.messages", "{message}", "Records delivered to the consumer, handled or not.");
        _events = _meter.CreateCounter<long>("bookstore.consumer.events", "{event}", "Events by outcome: handled, dead_lettered, duplicate (processed before).");
        _processDuration = _meter.CreateHistogram<double>("messaging.process.duration", "s", "Handling one event (its handlers, in the batch's transaction).", advice: Seconds);
        _batchDuration = _meter.CreateHistogram<double>("bookstore.consumer.batch.duration", "s", "One consumed batch, from its transaction's start to its commit.", advice: Seconds);
        _sent = _meter.CreateCounter<long>("messaging.client.sent.messages", "{message}", "Outbox rows the brokers acknowledged.");
        _publishDuration = _meter.CreateHistogram<double>("messaging.client.operation.duration", "s", "From handing an outbox row to the Kafka client to its delivery report.", advice: Seconds);
        _parked = _meter.CreateCounter<long>("bookstore.outbox.parked", "{row}", "Outbox rows parked: refused by Kafka for good.");
        _meter.CreateObservableGauge("messaging.kafka.consumer.lag", ObserveLag, "{message}", "Records of a partition not yet consumed by this member (librdkafka's consumer_lag).");
        _meter.CreateObservableGauge("bookstore.outbox.backlog", () => new Measurement<long>(ReadBacklog().Rows, Service), "{row}", "Outbox rows waiting to be published.");
        _meter.CreateObservableGauge("bookstore.outbox.oldest_age", () => new Measurement<double>(ReadBacklog().OldestAgeSeconds, Service), "s", "Age of the oldest outbox row waiting to be published (0 when none).");
    }

    private static InstrumentAdvice<double> Seconds { get; } = new()
    {
        HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    };

    private KeyValuePair<string, object?> Service => new("service.name", _options.ServiceName);

    /// <summary>What one consumed batch did: per event type and outcome, added once per batch.</summary>
    internal void RecordBatch(TimeSpan duration, int delivered, IEnumerable<((string Topic, string Type, string Outcome) Key, int Count)> outcomes)
    {
        _batchDuration.Record(duration.TotalSeconds, _group);
        _consumed.Add(delivered, _group);
        foreach (var ((topic, type, outcome), count) in outcomes)
        {
            _events.Add(
                count,
                _group,
                new(MessagingTelemetry.Destination, topic),
                new(MessagingTelemetry.EventType, type),
                new("bookstore.outcome", outcome));
        }
    }

    internal void RecordProcess(TimeSpan duration, string topic, string type, bool failed)
    {
        var tags = new TagList
        {
            _group,
            { MessagingTelemetry.Destination, topic },
            { MessagingTelemetry.EventType, type },
        };
        if (failed)
        {
            tags.Add(MessagingTelemetry.ErrorType, "handler_failed");
        }

        _processDuration.Record(duration.TotalSeconds, tags);
    }

    internal void RecordPublished(string topic, int count) =>
        _sent.Add(count, new KeyValuePair<string, object?>(MessagingTelemetry.Destination, topic), Service);

    internal void RecordPublishDuration(string topic, TimeSpan duration) =>
        _publishDuration.Record(duration.TotalSeconds, new(MessagingTelemetry.OperationName, "publish"), new(MessagingTelemetry.Destination, topic));

    internal void RecordParked(string topic) =>
        _parked.Add(1, new KeyValuePair<string, object?>(MessagingTelemetry.Destination, topic), Service);

    /// <summary>librdkafka's latest view of this member's partitions (only those it fetches).</summary>
    internal void ReportLag(IEnumerable<PartitionFetchStatistics> partitions) =>
        _lag = [.. partitions.Where(p => p.FetchState == "active" && p.ConsumerLag >= 0)];

    private IEnumerable<Measurement<long>> ObserveLag()
    {
        foreach (var p in _lag)
        {
            yield return new Measurement<long>(
                p.ConsumerLag,
                _group,
                new(MessagingTelemetry.Destination, _options.LogicalTopicName(p.Topic)),
                new(MessagingTelemetry.PartitionId, p.Partition.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    /// <summary>Rows waiting and the age of the oldest, read from the database at most once a second
    /// (a scrape reads both gauges).</summary>
    private (long Rows, double OldestAgeSeconds) ReadBacklog()
    {
        var backlog = _backlog;
        if (Stopwatch.GetElapsedTime(backlog.ReadAt) < TimeSpan.FromSeconds(1))
        {
            return (backlog.Rows, backlog.OldestAgeSeconds);
        }

        try
        {
            using var connection = _database.OpenAsync(CancellationToken.None).GetAwaiter().GetResult();
            var (rows, oldest) = connection.QuerySingle<(long, string?)>("SELECT count(*), (SELECT value FROM outbox ORDER BY seq LIMIT 1) FROM outbox");
            var age = WrittenAt(oldest) is { } at ? Math.Max(0, (DateTimeOffset.UtcNow - at).TotalSeconds) : 0;
            _backlog = (rows, age, Stopwatch.GetTimestamp());
            return (rows, age);
        }
        catch (System.Data.Common.DbException)
        {
            return (backlog.Rows, backlog.OldestAgeSeconds);
        }
    }

    /// <summary>When an outbox row was written: a CloudEvent's <c>time</c>, a dead letter's
    /// <c>failedAt</c>, a parked-row notice's <c>parkedAt</c>.</summary>
    internal static DateTimeOffset? WrittenAt(string? value)
    {
        if (value is null)
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(value);
            foreach (var name in (ReadOnlySpan<string>)["time", "failedAt", "parkedAt"])
            {
                if (json.RootElement.TryGetProperty(name, out var at) && at.TryGetDateTimeOffset(out var written))
                {
                    return written;
                }
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }
}
