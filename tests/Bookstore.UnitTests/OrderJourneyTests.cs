using System.Text.Json;
using Bookstore.Analytics.Data;
using Bookstore.Analytics.Journeys;
using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using Dapper;

namespace Bookstore.UnitTests;

/// <summary>An order's journey computed from hand-built CloudEvents carrying the timestamps the
/// services stamp (written, published, cause fetched, work queued and started).</summary>
public sealed class OrderJourneyTests : IDisposable
{
    private const string OrderId = "ORD-journey";
    private const string PlacedTrace = "0af7651916cd43dd8448eb211c80319c";
    // Yesterday: old enough for a fold up to now to take the order.
    private static readonly DateTimeOffset T0 = new(DateTime.UtcNow.Date.AddDays(-1), TimeSpan.Zero);
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-journey-");

    public void Dispose() => _data.Delete(recursive: true);

    /// <summary>An order confirmed the usual way, every boundary stamped: placed → reserved →
    /// charged (pending work) → confirmed, and an email for its placement and its confirmation.</summary>
    private static List<(CloudEvent Event, string Topic, int Partition, long Offset)> ConfirmedOrder()
    {
        var placed = Event(EventCatalog.OrderPlaced, "order-service", At(0), published: At(2), trace: PlacedTrace);
        var reserved = Event(EventCatalog.StockReserved, "inventory-service", At(9), published: At(10), cause: placed, causeFetched: At(5));
        var paid = Event(EventCatalog.PaymentSucceeded, "payment-service", At(60), published: At(61.5), cause: reserved, causeFetched: At(14), workQueued: At(15), workStarted: At(20));
        var confirmed = Event(EventCatalog.OrderConfirmed, "order-service", At(66.25), published: At(67), cause: paid, causeFetched: At(64));
        var placedEmail = Event(EventCatalog.NotificationSent, "notification-service", At(30), published: At(31), cause: placed, causeFetched: At(4), workQueued: At(6), workStarted: At(8));
        var confirmedEmail = Event(EventCatalog.NotificationSent, "notification-service", At(90), published: At(91), cause: confirmed, causeFetched: At(70), workQueued: At(71), workStarted: At(75));
        return
        [
            (placed, "book-orders", 3, 100),
            (reserved, "inventory-events", 3, 40),
            (placedEmail, "notification-events", 3, 7),
            (paid, "payment-results", 3, 22),
            (confirmed, "book-orders", 3, 101),
            (confirmedEmail, "notification-events", 3, 8),
        ];
    }

    [Fact]
    public void The_critical_paths_steps_add_up_to_placed_to_terminal_and_side_hops_are_listed_beside_it()
    {
        var journey = OrderJourney.Of(OrderId, ConfirmedOrder().Select(Recorded))!;

        Assert.Equal(EventCatalog.OrderConfirmed.TypeName, journey.Terminal);
        Assert.Equal(PlacedTrace, journey.TraceId);
        Assert.Equal(66.25, journey.PlacedToTerminalMs);
        Assert.True(journey.PathComplete, journey.PathGap);
        Assert.Null(journey.PathGap);
        Assert.Equal(journey.PlacedToTerminalMs!.Value, journey.PathSumMs, precision: 6);

        // In time order (by when the handled event was written); the emails are side hops.
        Assert.Equal(
            [
                ("inventory-service", EventCatalog.OrderPlaced.TypeName, true),
                ("notification-service", EventCatalog.OrderPlaced.TypeName, false),
                ("payment-service", EventCatalog.StockReserved.TypeName, true),
                ("order-service", EventCatalog.PaymentSucceeded.TypeName, true),
                ("notification-service", EventCatalog.OrderConfirmed.TypeName, false),
            ],
            journey.Hops.Select(h => (h.Service, h.EventType, h.OnCriticalPath)));

        // OrderPlaced handled by Inventory: read from book-orders/3@100; 2 ms in the outbox, 3 in Kafka, 4 handling.
        var reserve = journey.Hops[0];
        Assert.Equal(("book-orders", 3, 100L, EventCatalog.StockReserved.TypeName), (reserve.Topic, reserve.Partition, reserve.Offset, reserve.Wrote));
        Assert.Equal((At(0), At(2), At(5), At(9)), (reserve.WrittenAt, reserve.PublishedAt!.Value, reserve.FetchedAt!.Value, reserve.HandledAt));
        Assert.Equal(Steps((JourneySteps.QueuedInOutbox, 2), (JourneySteps.InKafka, 3), (JourneySteps.Handling, 4)), reserve.Steps);
        Assert.Equal(9, reserve.TotalMs);

        // The charge is pending work: handling ends when it was recorded, then the worker and the gateway.
        var charge = journey.Hops[2];
        Assert.Equal(
            Steps((JourneySteps.QueuedInOutbox, 1), (JourneySteps.InKafka, 4), (JourneySteps.Handling, 1), (JourneySteps.WaitingForWorker, 5), (JourneySteps.ExternalCall, 40)),
            charge.Steps);
        Assert.Equal((At(15), At(20)), (charge.WorkQueuedAt!.Value, charge.WorkStartedAt!.Value));
        Assert.Equal(charge.TotalMs, charge.Steps.Sum(s => s.Ms!.Value), precision: 6);

        var confirm = journey.Hops[3];
        Assert.Equal(Steps((JourneySteps.QueuedInOutbox, 1.5), (JourneySteps.InKafka, 2.5), (JourneySteps.Handling, 2.25)), confirm.Steps);
    }

    [Fact]
    public void Boundaries_that_were_not_recorded_leave_their_steps_null_and_the_path_incomplete()
    {
        // Events from before the relay stamped publishedat and the consumers causefetchedat.
        var events = ConfirmedOrder().Select(e => e with { Event = e.Event with { PublishedAt = null, CauseFetchedAt = null } }).Select(Recorded).ToList();

        var journey = OrderJourney.Of(OrderId, events)!;

        Assert.Equal(5, journey.Hops.Count);
        var reserve = journey.Hops[0];
        Assert.Equal(Steps((JourneySteps.QueuedInOutbox, null), (JourneySteps.InKafka, null), (JourneySteps.Handling, null)), reserve.Steps);
        Assert.Null(reserve.PublishedAt);
        Assert.Null(reserve.FetchedAt);
        Assert.Equal(9, reserve.TotalMs);

        // The worker's steps stand on their own boundaries and are still timed.
        Assert.Equal(
            Steps((JourneySteps.QueuedInOutbox, null), (JourneySteps.InKafka, null), (JourneySteps.Handling, null), (JourneySteps.WaitingForWorker, 5), (JourneySteps.ExternalCall, 40)),
            journey.Hops[2].Steps);
        Assert.False(journey.PathComplete);
        Assert.Contains("no timestamp", journey.PathGap, StringComparison.Ordinal);
        Assert.Equal(66.25, journey.PlacedToTerminalMs);
        Assert.Equal(45, journey.PathSumMs); // the timed steps only, never a made-up rest
    }

    [Fact]
    public void An_order_cancelled_by_its_timer_has_no_path_to_its_placement_and_says_why()
    {
        var placed = Event(EventCatalog.OrderPlaced, "order-service", At(0), published: At(1));
        var reserved = Event(EventCatalog.StockReserved, "inventory-service", At(9), published: At(10), cause: placed, causeFetched: At(5));
        var timedOut = Event(EventCatalog.OrderCancelled, "order-service", At(60_000), published: At(60_001));

        var journey = OrderJourney.Of(OrderId, [Recorded((placed, "book-orders", 0, 1)), Recorded((reserved, "inventory-events", 0, 1)), Recorded((timedOut, "book-orders", 0, 2))])!;

        Assert.Equal(EventCatalog.OrderCancelled.TypeName, journey.Terminal);
        Assert.Equal(60_000, journey.PlacedToTerminalMs);
        Assert.False(journey.PathComplete);
        Assert.Contains("names no cause", journey.PathGap, StringComparison.Ordinal);
        var hop = Assert.Single(journey.Hops);
        Assert.False(hop.OnCriticalPath);
        Assert.Equal(0, journey.PathSumMs);
    }

    [Fact]
    public void A_hop_whose_cause_is_not_recorded_yet_waits_for_it_and_a_pending_order_has_no_terminal()
    {
        var all = ConfirmedOrder();
        // Analytics has read payment-results and book-orders, not yet inventory-events.
        var journey = OrderJourney.Of(OrderId, all.Where(e => e.Topic != "inventory-events").Select(Recorded))!;

        Assert.DoesNotContain(journey.Hops, h => h.EventType == EventCatalog.StockReserved.TypeName || h.Service == "inventory-service");
        Assert.False(journey.PathComplete);
        Assert.Contains("not recorded (yet)", journey.PathGap, StringComparison.Ordinal);

        var pending = OrderJourney.Of(OrderId, all.Take(2).Select(Recorded))!;
        Assert.Null(pending.Terminal);
        Assert.Null(pending.PlacedToTerminalMs);
        Assert.False(pending.PathComplete);
        Assert.Null(OrderJourney.Of("ORD-unknown", all.Select(Recorded)));
    }

    [Fact]
    public void The_breakdown_gives_percentiles_per_kind_of_hop_and_step_in_journey_order()
    {
        var fast = OrderJourney.Of(OrderId, ConfirmedOrder().Select(Recorded))!;
        // The same order a second time, each timestamp twice as far from placement.
        var slow = OrderJourney.Of(OrderId, ConfirmedOrder().Select(e => e with { Event = Stretched(e.Event, 2) }).Select(Recorded))!;

        var breakdown = JourneyBreakdown.Of([fast, slow]);

        Assert.Equal((2, 2, 2), (breakdown.Orders, breakdown.Terminal, breakdown.PathsComplete));
        Assert.Equal((66.25, 132.5), (breakdown.PlacedToTerminalMs.P50Ms!.Value, breakdown.PlacedToTerminalMs.P99Ms!.Value));
        Assert.Equal(breakdown.PlacedToTerminalMs, breakdown.PathSumMs);
        Assert.Equal(
            ["inventory-service", "notification-service", "payment-service", "order-service", "notification-service"],
            breakdown.Hops.Select(h => h.Service));
        var charge = breakdown.Hops[2];
        Assert.True(charge.OnCriticalPath);
        Assert.Equal(2, charge.Hops);
        var call = charge.Steps.Single(s => s.Step == JourneySteps.ExternalCall).Ms;
        Assert.Equal((2, 40.0, 80.0), (call.Count, call.P50Ms!.Value, call.P99Ms!.Value));
        Assert.False(breakdown.Hops[1].OnCriticalPath);
        Assert.Equal([JourneySteps.QueuedInOutbox, JourneySteps.InKafka, JourneySteps.Handling], breakdown.Hops[0].Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task Analytics_records_each_event_of_the_order_once_reads_back_the_same_journey_and_folds_it_away_with_the_facts()
    {
        using var database = ServiceDatabase.Open(new MessagingOptions { DatabasePath = Path.Combine(_data.FullName, "analytics.db") }, AnalyticsStore.Schema);
        var events = ConfirmedOrder();

        var consumed = events.Select(c =>
        {
            var definition = EventCatalog.Find(c.Event.Type)!;
            return new ConsumedEvent(c.Event, definition, EventSerializer.ReadData(c.Event, definition), c.Topic, c.Partition, c.Offset);
        }).ToList();

        // Each event twice in one batch, then all of them again in another: each is recorded once.
        var recorded = await database.WriteAsync(t => AnalyticsStore.RecordAsync(t, [.. consumed, .. consumed]));
        var redelivered = await database.WriteAsync(t => AnalyticsStore.RecordAsync(t, consumed));

        Assert.Equal(events.Count, recorded);
        Assert.Equal(0, redelivered);
        await using (var connection = await database.OpenAsync())
        {
            var stored = await JourneyStore.EventsOfAsync(connection, OrderId);
            Assert.Equal(events.Select(Recorded).OrderBy(e => e.EventId), stored.OrderBy(e => e.EventId));
            Assert.Equal(JsonSerializer.Serialize(OrderJourney.Of(OrderId, events.Select(Recorded))), JsonSerializer.Serialize(OrderJourney.Of(OrderId, stored)));
            var (placed, sample) = await JourneyStore.OrdersPlacedAsync(connection, T0.AddSeconds(-1), T0.AddSeconds(1), 10);
            Assert.Equal(1, placed);
            Assert.Equal([OrderId], sample);
            var (later, none) = await JourneyStore.OrdersPlacedAsync(connection, T0.AddMilliseconds(1), T0.AddSeconds(1), 10);
            Assert.Equal(0, later);
            Assert.Empty(none);
            Assert.Equal(events.Count, (await JourneyStore.EventsOfAsync(connection, [OrderId, "ORD-other"], chunk: 1)).Count);
        }

        // The fold takes a whole order with its journey.
        var folded = await database.WriteAsync(t => AnalyticsStore.FoldAsync(t, DateTimeOffset.UtcNow, 100));
        Assert.Equal(1, folded);
        await using (var connection = await database.OpenAsync())
        {
            Assert.Equal(0L, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM journey_events"));
        }
    }

    [Fact]
    public void The_trace_id_is_the_second_field_of_the_traceparent()
    {
        Assert.Equal(PlacedTrace, JourneyEvent.TraceIdOf($"00-{PlacedTrace}-b7ad6b7169203331-01"));
        Assert.Null(JourneyEvent.TraceIdOf(null));
        Assert.Null(JourneyEvent.TraceIdOf("|not.w3c"));
    }

    [Fact]
    public async Task A_long_run_is_counted_whole_and_sampled_evenly_from_its_beginning_to_its_end()
    {
        using var database = ServiceDatabase.Open(new MessagingOptions { DatabasePath = Path.Combine(_data.FullName, "analytics.db") }, AnalyticsStore.Schema);
        // Recorded out of order: the sample follows the time they were placed.
        foreach (var i in new[] { 7, 2, 9, 0, 4, 1, 8, 3, 6, 5 })
        {
            var id = $"ORD-{i}";
            await database.WriteAsync(t => AnalyticsStore.RecordAsync(t, $"evt-{i}", "book-orders", EventCatalog.OrderPlaced, new OrderPlaced(id, "c", [new("978-0", 1, 10m)], 10m), T0.AddMilliseconds(i)));
        }

        await using var connection = await database.OpenAsync();
        var (placed, sample) = await JourneyStore.OrdersPlacedAsync(connection, T0, T0.AddSeconds(1), 4);
        Assert.Equal(10, placed);
        Assert.Equal(["ORD-0", "ORD-3", "ORD-5", "ORD-8"], sample);
        var (all, whole) = await JourneyStore.OrdersPlacedAsync(connection, T0, T0.AddSeconds(1), 10);
        Assert.Equal(10, all);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"ORD-{i}"), whole);
    }

    private static DateTimeOffset At(double ms) => T0.AddTicks((long)(ms * TimeSpan.TicksPerMillisecond));

    private static JourneyEvent Recorded((CloudEvent Event, string Topic, int Partition, long Offset) e) =>
        JourneyEvent.From(e.Event, OrderId, e.Topic, e.Partition, e.Offset);

    private static List<JourneyStep> Steps(params (string Step, double? Ms)[] steps) => [.. steps.Select(s => new JourneyStep(s.Step, s.Ms))];

    private static CloudEvent Stretched(CloudEvent e, double factor)
    {
        static DateTimeOffset? Stretch(DateTimeOffset? at, double factor) => at is { } a ? T0 + ((a - T0) * factor) : null;
        return e with
        {
            Time = Stretch(e.Time, factor)!.Value,
            PublishedAt = Stretch(e.PublishedAt, factor),
            CauseFetchedAt = Stretch(e.CauseFetchedAt, factor),
            WorkQueuedAt = Stretch(e.WorkQueuedAt, factor),
            WorkStartedAt = Stretch(e.WorkStartedAt, factor),
        };
    }

    private static CloudEvent Event(
        EventDefinition definition,
        string source,
        DateTimeOffset written,
        DateTimeOffset? published = null,
        CloudEvent? cause = null,
        DateTimeOffset? causeFetched = null,
        DateTimeOffset? workQueued = null,
        DateTimeOffset? workStarted = null,
        string? trace = null)
    {
        object data = definition.TypeName switch
        {
            var t when t == EventCatalog.OrderPlaced.TypeName => new OrderPlaced(OrderId, "c", [new("978-0", 1, 10m)], 10m),
            var t when t == EventCatalog.StockReserved.TypeName => new StockReserved(OrderId, "c", [new("978-0", 1, 10m)], 10m),
            var t when t == EventCatalog.PaymentSucceeded.TypeName => new PaymentSucceeded(OrderId, "P-1", 10m),
            var t when t == EventCatalog.OrderConfirmed.TypeName => new OrderConfirmed(OrderId, "c", [new("978-0", 1, 10m)], 10m),
            var t when t == EventCatalog.OrderCancelled.TypeName => new OrderCancelled(OrderId, "c", "timeout"),
            _ => new NotificationSent($"N-{Guid.NewGuid():N}", "c", OrderId, "placed", "recorded"),
        };
        return new CloudEvent
        {
            Id = $"evt-{Guid.NewGuid()}",
            Source = source,
            Type = definition.TypeName,
            Time = written,
            Subject = OrderId,
            TraceParent = $"00-{trace ?? Convert.ToHexStringLower(Guid.NewGuid().ToByteArray())}-b7ad6b7169203331-01",
            CausationId = cause?.Id,
            CauseFetchedAt = causeFetched,
            WorkQueuedAt = workQueued,
            WorkStartedAt = workStarted,
            PublishedAt = published,
            Data = JsonSerializer.SerializeToElement(data, definition.ClrType, EventSerializer.Options),
        };
    }
}
