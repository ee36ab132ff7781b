using System.Text.Json;
using Bookstore.Analytics.Journeys;
using Bookstore.Cli;

namespace Bookstore.UnitTests;

/// <summary>What <c>./bookstore order</c> and <c>load</c> print of Analytics' journey answers, read
/// from the JSON the endpoints write.</summary>
public sealed class JourneyReportTests
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    private static readonly OrderJourney Journey = new(
        "ORD-1",
        "0af7651916cd43dd8448eb211c80319c",
        DateTimeOffset.UnixEpoch,
        DateTimeOffset.UnixEpoch.AddMilliseconds(66.2),
        "bookstore.order.confirmed.v1",
        66.2,
        66.2,
        true,
        null,
        [
            new JourneyHop(
                "payment-service", "bookstore.stock.reserved.v1", "evt-1", "inventory-events", 3, 40, "bookstore.payment.succeeded.v1", "evt-2",
                DateTimeOffset.UnixEpoch, null, null, null, null, DateTimeOffset.UnixEpoch.AddMilliseconds(51),
                [new(JourneySteps.QueuedInOutbox, 1), new(JourneySteps.InKafka, null), new(JourneySteps.Handling, 1.2), new(JourneySteps.WaitingForWorker, 5), new(JourneySteps.ExternalCall, 40)],
                51,
                true),
        ]);

    [Fact]
    public void The_order_command_prints_each_hop_with_its_steps_and_a_dash_for_an_untimed_one()
    {
        var view = JsonSerializer.Deserialize<OrderJourneyView>(JsonSerializer.Serialize(Journey, Web), Web)!;
        using var output = new StringWriter();

        JourneyReport.Print(view, output);

        var lines = output.ToString().Split('\n');
        Assert.Contains("placed → order.confirmed 66.2 ms; the critical path's steps add up to 66.2 ms", lines[0], StringComparison.Ordinal);
        var hop = Assert.Single(lines, l => l.Contains("payment-service", StringComparison.Ordinal));
        Assert.Contains("★ payment-service stock.reserved → payment.succeeded", hop, StringComparison.Ordinal);
        Assert.Contains("inventory-events/3@40", hop, StringComparison.Ordinal);
        Assert.Equal(["1.0", "–", "1.2", "5.0", "40.0", "51.0"], hop.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^6..]);
    }

    [Fact]
    public void The_load_command_prints_p50_and_p99_per_hop_and_step()
    {
        var breakdown = JourneyBreakdown.Of([Journey, Journey with { OrderId = "ORD-2" }]);
        var report = new JourneyBreakdownReport(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(1), 2, 2, breakdown);
        var view = JsonSerializer.Deserialize<JourneyBreakdownReportView>(JsonSerializer.Serialize(report, Web), Web)!;
        using var output = new StringWriter();

        JourneyReport.Print(view, output);

        var text = output.ToString();
        Assert.Contains("2 orders placed during the run (all read from Analytics), 2 terminal, 2 with a complete critical path", text, StringComparison.Ordinal);
        var hop = Assert.Single(text.Split('\n'), l => l.Contains("payment-service", StringComparison.Ordinal));
        Assert.Contains("40.0 / 40.0", hop, StringComparison.Ordinal);
        Assert.Contains(" – ", hop, StringComparison.Ordinal); // nothing timed in Kafka
        Assert.Equal("stock.reserved", JourneyReport.ShortType("bookstore.stock.reserved.v1"));
    }
}
