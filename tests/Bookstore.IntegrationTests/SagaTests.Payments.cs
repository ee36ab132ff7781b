using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;
using System.Data.Common;

namespace Bookstore.IntegrationTests;

/// <summary>The Payment Service against a gateway that is down or slow: refunds are never lost,
/// and a slow gateway holds up nothing but its own charges.</summary>
public abstract partial class SagaTests
{
    [Fact]
    public async Task Refunds_owed_while_the_gateway_is_down_are_made_once_it_recovers_and_never_dead_lettered()
    {
        // Orders time out (and are cancelled) while their charges are still at a slow gateway: the
        // charges go through, and the refunds they are owed meet a gateway that fails every call.
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "refund-outage", new Dictionary<string, string>
        {
            ["Orders__PendingTimeout"] = "00:00:00.5",
            ["Payments__RetryDelay"] = "00:00:00.2",
            ["Payments__MaxRetryDelay"] = "00:00:01",
            ["Payments__IdlePoll"] = "00:00:00.2",
        });
        // A first order warms every service up, so that the next ones reach the gateway well
        // within the timeout (0.5 to 1.5 s: the timeout is checked every second).
        await WaitTerminalAsync(suite, [await PlaceAsync(suite, "warm-up", [(Plentiful[0], 1)])]);
        // Below the 2 s call timeout of the code before the change, so that it too makes the charges.
        await SetGatewayAsync(suite, failureRate: 0, latencyMs: 1800);
        var ids = new List<string>();
        await PlaceBatchAsync(suite, [.. Enumerable.Range(0, 8).Select(i => ($"refund-{i}", new List<(string, int)> { (Plentiful[i % Plentiful.Length], 1) }))], ids);

        // Cancelled by the timeout while their charges are at the gateway (which takes each call's
        // settings as it arrives); from now on it fails.
        var cancelled = await Poll.UntilAsync(
            async _ =>
            {
                foreach (var id in ids)
                {
                    if ((await suite["Orders"].GetAsync<OrderView>($"/orders/{id}")).Status == "Pending")
                    {
                        return false;
                    }
                }

                return true;
            },
            SagaDeadline,
            TimeSpan.FromMilliseconds(20));
        await SetGatewayAsync(suite, failureRate: 1, latencyMs: 0);
        Assert.True(cancelled, "the orders were decided");

        // Every refund owed is tried against the failing gateway (the pending work shows the attempts).
        var attempted = await Poll.UntilAsync(
            async _ =>
            {
                var owed = await ChargedAndCancelledAsync(suite, ids);
                var pending = await PendingWorkAsync(suite);
                return owed.Count > 0
                    && !pending.Any(w => w.Kind == "charge")
                    && owed.All(id => pending.Any(w => w.Kind == "refund" && w.Key == id && w.Attempts >= 1));
            },
            TimeSpan.FromSeconds(30),
            TimeSpan.FromMilliseconds(200));

        await SetGatewayAsync(suite, failureRate: 0, latencyMs: 0);
        var refunded = await Poll.UntilAsync(
            async _ =>
            {
                var ledger = await ReadLedgerAsync(suite);
                var orders = await WaitTerminalAsync(suite, ids);
                return ids.All(id => !ledger.TryGetValue(id, out var charge) || charge.Refunded == (orders[id].Status == "Cancelled"));
            },
            TimeSpan.FromSeconds(60),
            TimeSpan.FromMilliseconds(200));

        var final = await WaitTerminalAsync(suite, ids);
        var ledger = await ReadLedgerAsync(suite);
        var owed = ids.Where(id => final[id].Status == "Cancelled" && ledger.ContainsKey(id)).ToList();
        Assert.True(owed.Count > 0, "the test made some orders charged and then cancelled");
        Assert.True(refunded, "every cancelled order's charge is refunded once the gateway is back; not refunded: " + string.Join(", ", owed.Where(id => !ledger[id].Refunded)));
        await AssertNothingTwiceAsync(suite, final);
        Assert.True(attempted, "the refunds owed were tried while the gateway failed (GET /admin/pending-work)");
        foreach (var id in owed)
        {
            Assert.Equal("Refunded", (await suite["Payments"].GetAsync<PaymentView>($"/payments/{id}")).Status);
        }
    }

    [Fact]
    public async Task A_slow_gateway_stalls_neither_the_consumers_nor_the_outbox_relay_of_two_payment_instances()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "slow-gateway");
        var second = await suite.StartAnotherInstanceAsync("Payments");
        await SetGatewayAsync(suite, suite.Payments, failureRate: 0, latencyMs: 5000);
        await SetGatewayAsync(suite, second.Http, failureRate: 0, latencyMs: 5000);

        // Two dozen orders over every partition, each charge taking 5 s: charges overlap (they hold
        // no lock), so all are confirmed in little more than one gateway call. Under the write lock
        // they would queue one after another on both instances (and the relay behind them).
        var clock = Stopwatch.StartNew();
        var ids = new List<string>();
        await PlaceBatchAsync(suite, [.. Enumerable.Range(0, 24).Select(i => ($"slow-{i}", new List<(string, int)> { (Plentiful[i % Plentiful.Length], 1) }))], ids);
        var final = new Dictionary<string, OrderView>();
        var decided = await Poll.UntilAsync(
            async _ =>
            {
                foreach (var id in ids.Where(id => !final.ContainsKey(id)))
                {
                    if (await suite["Orders"].GetAsync<OrderView>($"/orders/{id}") is { Status: not "Pending" } order)
                    {
                        final[id] = order;
                    }
                }

                return final.Count == ids.Count;
            },
            TimeSpan.FromSeconds(30),
            TimeSpan.FromMilliseconds(250));
        Assert.True(decided, $"{ids.Count - final.Count} of {ids.Count} orders still pending {clock.Elapsed.TotalSeconds:F0} s after placing them with a 5 s gateway");
        Assert.All(final.Values, o => Assert.True(o.Status == "Confirmed", $"{o.Id}: {o.Status} {o.Reason}"));
        await AssertNothingTwiceAsync(suite, final);
    }

    /// <summary>Nothing twice, seen where it would cost money: the gateway's ledger (confirmed orders
    /// charged once and not refunded, cancelled ones not charged or refunded), one payment result
    /// per order on <c>payment-results</c> (by distinct event id: the relay may repeat a record,
    /// never an event), and nothing on the dead-letter topic.</summary>
    private async Task AssertNothingTwiceAsync(BookstoreSuite suite, Dictionary<string, OrderView> orders)
    {
        var ledger = await ReadLedgerAsync(suite);
        foreach (var order in orders.Values)
        {
            if (order.Status == "Confirmed")
            {
                Assert.True(ledger.TryGetValue(order.Id, out var charge) && !charge.Refunded && charge.Amount == order.Total, $"{order.Id} confirmed: charged {order.Total} once, not refunded");
            }
            else
            {
                Assert.True(!ledger.TryGetValue(order.Id, out var charge) || charge.Refunded, $"{order.Id} cancelled ({order.Reason}): not charged, or refunded");
            }
        }

        var succeeded = EventCatalog.For<PaymentSucceeded>().TypeName;
        var failed = EventCatalog.For<PaymentFailed>().TypeName;
        var results = TestClients.ReadToEnd(fixture.Connection, suite.Namespace + Topics.PaymentResults.Name, Topics.PaymentResults.Partitions)
            .Select(r => (OrderId: r.Message.Key, Event: EventSerializer.Parse(r.Message.Value)))
            .Where(r => r.Event.Type == succeeded || r.Event.Type == failed)
            .GroupBy(r => r.OrderId)
            .ToDictionary(g => g.Key, g => g.DistinctBy(r => r.Event.Id).Select(r => r.Event.Type).ToList());
        foreach (var order in orders.Values)
        {
            var published = results.GetValueOrDefault(order.Id) ?? [];
            Assert.True(published.Count <= 1, $"{order.Id}: {published.Count} payment results ({string.Join(", ", published)})");
            if (order.Status == "Confirmed")
            {
                Assert.Equal(new[] { succeeded }, published);
            }
        }

        var letters = TestClients.ReadToEnd(fixture.Connection, suite.Namespace + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions)
            .Select(r => JsonSerializer.Deserialize<DeadLetter>(r.Message.Value, EventSerializer.Options)!)
            .ToList();
        Assert.True(letters.Count == 0, "dead letters: " + string.Join("; ", letters.Select(l => $"{l.Group} {l.Topic}/{l.Partition}@{l.Offset}: {l.Error}")));
    }

    private static async Task<List<string>> ChargedAndCancelledAsync(BookstoreSuite suite, List<string> ids)
    {
        var ledger = await ReadLedgerAsync(suite);
        var charged = new List<string>();
        foreach (var id in ids.Where(ledger.ContainsKey))
        {
            if ((await suite["Orders"].GetAsync<OrderView>($"/orders/{id}")).Status == "Cancelled")
            {
                charged.Add(id);
            }
        }

        return charged;
    }

    /// <summary>What the Payment Service still has to do (the suite's client sends the admin key).</summary>
    private static async Task<List<PendingWorkView>> PendingWorkAsync(BookstoreSuite suite) =>
        (await suite.Payments.GetFromJsonAsync<List<PendingWorkView>>("/admin/pending-work"))!;

    /// <summary>The simulated gateway's ledger, one entry per charged order (the suite's client sends the admin key).</summary>
    private static async Task<Dictionary<string, LedgerEntry>> ReadLedgerAsync(BookstoreSuite suite) =>
        (await suite.Payments.GetFromJsonAsync<List<ChargeView>>("/admin/gateway/ledger"))!
            .ToDictionary(c => c.OrderId, c => new LedgerEntry(c.Amount, c.Refunded));

    private sealed record ChargeView(string ChargeId, string OrderId, decimal Amount, bool Refunded);

    private sealed record LedgerEntry(decimal Amount, bool Refunded);

    private sealed record PendingWorkView(string Id, string Kind, string Key, int Attempts, string? LastError);
}
