using System.Globalization;
using System.Text.RegularExpressions;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests;

/// <summary>What each service's <c>/metrics</c> (the Prometheus scrape) says after the saga.</summary>
public abstract partial class SagaTests
{
    [Fact]
    public async Task Every_service_exposes_its_outbox_backlog_and_consumer_lag_and_orders_count_every_decision()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "metrics");
        var placed = new List<string>();
        await PlaceBatchAsync(suite, [.. Enumerable.Range(0, 20).Select(i => (Customer: $"metrics-{i}", Lines: new List<(string Isbn, int Quantity)> { (Plentiful[i % Plentiful.Length], 1) }))], placed);
        var orders = await WaitTerminalAsync(suite, placed);

        // Once every order is decided, each consumer catches up: every partition it fetches reports a lag, and it reaches 0.
        foreach (var service in BookstoreSuite.Names)
        {
            var samples = new List<Sample>();
            var caughtUp = await Poll.UntilAsync(
                async _ =>
                {
                    samples = await ScrapeAsync(suite[service].Http);
                    var lag = samples.Where(s => s.Name == "messaging_kafka_consumer_lag").ToList();
                    return lag.Count > 0 && lag.All(s => s.Value == 0) && samples.Any(s => s.Name == "bookstore_outbox_backlog" && s.Value == 0);
                },
                TestClients.Deadline,
                TimeSpan.FromMilliseconds(500));
            Assert.True(caughtUp, $"{service}: a lag per partition, all 0, and an empty outbox backlog; saw {string.Join(", ", samples.Where(s => s.Name is "messaging_kafka_consumer_lag" or "bookstore_outbox_backlog" or "bookstore_outbox_oldest_age_seconds"))}");
            Assert.Contains(samples, s => s.Name == "bookstore_outbox_oldest_age_seconds");
            Assert.Contains(samples, s => s.Name == "bookstore_consumer_events_total" && s.Labels.Contains("bookstore_outcome=\"handled\"", StringComparison.Ordinal));
            Assert.Contains(samples, s => s.Name == "messaging_process_duration_seconds_count");
            Assert.Contains(samples, s => s.Name.StartsWith("http_server_request_duration_seconds", StringComparison.Ordinal));
            Assert.Contains(samples, s => s.Name.StartsWith("dotnet_gc_", StringComparison.Ordinal));
        }

        var ordersMetrics = await ScrapeAsync(suite.Orders);
        Assert.Equal(placed.Count, Sum(ordersMetrics, "bookstore_orders_placed_total"));
        Assert.Equal(orders.Values.Count(o => o.Status == "Confirmed"), Sum(ordersMetrics, "bookstore_orders_decided_total", "bookstore_order_outcome=\"confirmed\""));
        Assert.Equal(orders.Values.Count(o => o.Status == "Cancelled"), Sum(ordersMetrics, "bookstore_orders_decided_total", "bookstore_order_outcome=\"cancelled\""));
        Assert.Equal(placed.Count, Sum(ordersMetrics, "bookstore_orders_duration_seconds_count"));
        Assert.True(Sum(ordersMetrics, "messaging_client_sent_messages_total") >= placed.Count * 2, "Orders published each order's placement and decision");
    }

    private static double Sum(List<Sample> samples, string name, string? label = null) =>
        samples.Where(s => s.Name == name && (label is null || s.Labels.Contains(label, StringComparison.Ordinal))).Sum(s => s.Value);

    /// <summary>The Prometheus text format, one sample per line: <c>name{labels} value</c>.</summary>
    private static async Task<List<Sample>> ScrapeAsync(HttpClient http)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        return [.. text.Split('\n')
            .Select(line => SampleLine().Match(line))
            .Where(m => m.Success)
            .Select(m => new Sample(m.Groups["name"].Value, m.Groups["labels"].Value, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)))];
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[-+0-9.eE]+|NaN)( \d+)?$")]
    private static partial Regex SampleLine();

    private sealed record Sample(string Name, string Labels, double Value);
}
