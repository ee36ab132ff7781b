using System.Diagnostics;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Outbox;
using Bookstore.Messaging.Storage;
using Bookstore.Messaging.Telemetry;
using Bookstore.Messaging.Work;
using Dapper;

namespace Bookstore.UnitTests;

/// <summary>What each event carries for its trace and its order's journey: the span that wrote it,
/// the event that caused it and when that one was fetched, the pending work in between, and when
/// the relay published it.</summary>
public sealed class TelemetryTests : IDisposable
{
    private static readonly DateTimeOffset Fetched = new(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("telemetry-").FullName;
    private readonly ActivityListener _listener = new()
    {
        ShouldListenTo = source => source.Name == MessagingTelemetry.SourceName,
        Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
    };

    public TelemetryTests() => ActivitySource.AddActivityListener(_listener);

    [Fact]
    public void An_event_written_while_another_is_handled_names_its_cause_and_continues_its_trace()
    {
        CloudEvent cause;
        using (MessagingTelemetry.StartCreate("book-orders", EventCatalog.OrderPlaced.TypeName))
        {
            cause = EventSerializer.Parse(EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-1"), "order-service").Value);
        }

        using var process = MessagingTelemetry.StartProcess(cause, "book-orders", 2, 41, "inventory-service");
        using var handling = EventCause.Enter(new EventCause(cause.Id, Fetched, process!.Id));

        var written = EventSerializer.Parse(EventSerializer.Serialize(EventCatalog.StockReserved, new StockReserved("ORD-1", "alice", [], 10m), "inventory-service").Value);

        Assert.Equal(cause.Id, written.CausationId);
        Assert.Equal(Fetched, written.CauseFetchedAt);
        Assert.Null(written.WorkQueuedAt);
        Assert.Equal(process.Id, written.TraceParent);
        Assert.Equal(ActivityContext.Parse(cause.TraceParent!, null).TraceId, process.TraceId);
        Assert.Equal(ActivityContext.Parse(cause.TraceParent!, null).SpanId, process.ParentSpanId);
    }

    [Fact]
    public void An_event_written_outside_any_handling_has_no_cause()
    {
        var written = EventSerializer.Parse(EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-2"), "order-service").Value);

        Assert.Null(written.CausationId);
        Assert.Null(written.CauseFetchedAt);
    }

    [Fact]
    public async Task Pending_work_keeps_its_cause_beside_the_intent_and_the_events_it_writes_carry_the_work_times()
    {
        using var database = ServiceDatabase.Open(new MessagingOptions { DatabasePath = Path.Combine(_directory, "work.db") }, PendingWork.Schema);
        using (EventCause.Enter(new EventCause("cause-1", Fetched, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")))
        {
            await database.WriteAsync(t => PendingWork.AddAsync(t, "charge", "ORD-3", new Intent("ORD-3", 12.5m)));
        }

        await using var connection = await database.OpenAsync(CancellationToken.None);
        var (payload, createdAt) = await connection.QuerySingleAsync<(string, long)>("SELECT payload, created_at FROM pending_work");
        var item = new WorkItem("charge:ORD-3", "charge", "ORD-3", payload, 0, DateTimeOffset.FromUnixTimeMilliseconds(createdAt));

        Assert.Equal(new Intent("ORD-3", 12.5m), item.Read<Intent>());
        var cause = item.Cause();
        Assert.NotNull(cause);
        Assert.Equal(("cause-1", Fetched, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), (cause.EventId, cause.FetchedAt, cause.TraceParent));
        // Kept to the tick beside the intent (the row's created_at has whole milliseconds).
        Assert.True(cause.WorkQueuedAt >= item.CreatedAt && cause.WorkQueuedAt < item.CreatedAt.AddSeconds(5), $"queued at {cause.WorkQueuedAt:O}; the row was created at {item.CreatedAt:O}");

        var started = Fetched.AddMilliseconds(40);
        using (EventCause.Enter(cause with { WorkStartedAt = started }))
        {
            var written = EventSerializer.Parse(EventSerializer.Serialize(EventCatalog.PaymentSucceeded, new PaymentSucceeded("ORD-3", "ch_1", 12.5m), "payment-service").Value);
            Assert.Equal(("cause-1", cause.WorkQueuedAt, started), (written.CausationId, written.WorkQueuedAt, written.WorkStartedAt));
        }
    }

    [Fact]
    public void Work_recorded_outside_any_handling_has_no_cause()
    {
        var item = new WorkItem("refund:ORD-4", "refund", "ORD-4", """{"orderId":"ORD-4"}""", 0, Fetched);

        Assert.Null(item.Cause());
    }

    [Fact]
    public void The_relay_stamps_when_it_published_on_cloud_events_and_leaves_other_rows_alone()
    {
        var at = new DateTimeOffset(2026, 11, 26, 12, 0, 1, 5, TimeSpan.Zero);
        var row = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-5"), "order-service").Value;
        var deadLetter = """{"id":"x","group":"g","failedAt":"2026-11-26T12:00:00Z"}""";

        var stamped = EventSerializer.Parse(OutboxRelay.Stamp(row, OutboxRelay.PublishedAtAttribute(at)));

        Assert.Equal(at, stamped.PublishedAt);
        Assert.Equal(EventSerializer.Parse(row) with { PublishedAt = at, Data = stamped.Data }, stamped);
        Assert.Equal(deadLetter, OutboxRelay.Stamp(deadLetter, OutboxRelay.PublishedAtAttribute(at)));
    }

    [Fact]
    public void The_outbox_backlog_dates_a_row_by_its_event_or_its_failure()
    {
        var row = EventSerializer.Serialize(EventCatalog.OrderPlaced, Placed("ORD-6"), "order-service").Value;

        Assert.Equal(EventSerializer.Parse(row).Time, MessagingMetrics.WrittenAt(row));
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero), MessagingMetrics.WrittenAt("""{"failedAt":"2026-11-26T12:00:00Z"}"""));
        Assert.Null(MessagingMetrics.WrittenAt("not json"));
    }

    public void Dispose()
    {
        _listener.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static OrderPlaced Placed(string id) => new(id, "alice", [new OrderLine("978-0-13-468599-1", 1, 10m)], 10m);

    private sealed record Intent(string OrderId, decimal Total);
}
