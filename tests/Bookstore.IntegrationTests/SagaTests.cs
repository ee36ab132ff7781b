using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;

namespace Bookstore.IntegrationTests;

/// <summary>The five services as separate processes on the real cluster: orders placed over HTTP
/// flow through the saga and end Confirmed or Cancelled, with stock, payments, notifications and
/// analytics agreeing, even when a service is SIGKILLed halfway.</summary>
public abstract partial class SagaTests(KafkaClusterFixture fixture, StorageBackend backend)
{
    private const int Orders = 200;
    private static readonly TimeSpan SagaDeadline = TimeSpan.FromSeconds(120);
    private static readonly string[] Scarce = ["978-0-00-000001-1", "978-0-00-000002-8"];
    private static readonly string[] Plentiful = ["978-0-13-468599-1", "978-1-4919-3616-3", "978-1-4920-4346-3", "978-0-321-12521-7", "978-1-61729-453-5"];

    [Fact]
    public async Task Two_hundred_orders_end_terminal_with_stock_payments_notifications_and_analytics_in_agreement()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "saga");
        await RunAndVerifyAsync(suite, killHalfway: null);
    }

    [Theory]
    [InlineData("Inventory")]
    [InlineData("Payments")]
    [InlineData("Orders")]
    public async Task A_service_killed_and_restarted_halfway_loses_no_order_and_does_nothing_twice(string victim)
    {
        // A killed Payment instance's claimed charges become due again when their lease ends.
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, $"kill-{victim.ToLowerInvariant()}", new Dictionary<string, string> { ["Payments__ClaimLease"] = "00:00:10" });
        var orders = await RunAndVerifyAsync(suite, killHalfway: victim);
        await AssertNothingTwiceAsync(suite, orders);
    }

    [Fact]
    public async Task Unparseable_unknown_and_oversized_messages_are_dead_lettered_and_orders_placed_after_them_confirm()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "poison");
        var unknown = JsonSerializer.Serialize(new { specversion = "1.0", id = $"evt-{Guid.NewGuid()}", source = "test", type = "bookstore.order.teleported.v9", data = new { } });
        // 170 KB of '<' is over 1 MB as a JSON-escaped dead letter: more than a broker accepts.
        var oversized = new string('<', 170_000);
        var sent = await TestClients.ProduceAllAsync(fixture.Connection, suite.Namespace + Topics.BookOrders.Name, [("ORD-POISON", "\u0001 not json at all"), ("ORD-POISON", unknown), ("ORD-POISON", oversized)]);

        var orders = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            orders.Add(await PlaceAsync(suite, $"after-poison-{i}", [(Plentiful[i % Plentiful.Length], 1)]));
        }

        var final = await WaitTerminalAsync(suite, orders);
        Assert.All(orders, o => Assert.Equal("Confirmed", final[o].Status));

        // Every group reading book-orders (Inventory, Payment, Notification, Analytics) dead-letters both.
        List<DeadLetter> letters = [];
        Assert.True(
            await Poll.UntilAsync(
                () =>
                {
                    letters = [.. TestClients.ReadToEnd(fixture.Connection, suite.Namespace + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions)
                        .Select(r => JsonSerializer.Deserialize<DeadLetter>(r.Message.Value, EventSerializer.Options)!)];
                    return letters.Count >= 12;
                },
                TestClients.Deadline,
                TimeSpan.FromMilliseconds(500)),
            $"12 dead letters (3 messages, 4 groups); saw {letters.Count}");
        var groups = new[] { ConsumerGroups.Inventory, ConsumerGroups.Payments, ConsumerGroups.Notifications, ConsumerGroups.Analytics }.Select(g => suite.Namespace + g).Order().ToList();
        foreach (var delivery in sent)
        {
            var forMessage = letters.Where(l => l.Partition == delivery.Partition.Value && l.Offset == delivery.Offset.Value).ToList();
            Assert.Equal(groups, forMessage.Select(l => l.Group).Order());
            Assert.All(forMessage, l => Assert.Equal(Topics.BookOrders.Name, l.Topic));
        }

        // The oversized one's letters carry the start of its value and say so; nothing was parked.
        Assert.All(letters.Where(l => l.Offset == sent[2].Offset.Value), l => Assert.True(l.ValueTruncated && l.ValueBytes == oversized.Length, $"{l.Group}: truncated"));
        foreach (var service in new[] { "Inventory", "Payments", "Notifications", "Analytics", "Orders" })
        {
            var outbox = await suite[service].GetAsync<Bookstore.Messaging.Outbox.OutboxStatus>("/outbox");
            Assert.Equal(0, outbox.Parked);
        }
    }

    [Fact]
    public async Task Bad_requests_get_problem_details_and_create_nothing()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "badrequests");
        var before = await suite["Orders"].GetAsync<OrderStats>("/orders/stats");

        await AssertProblemAsync(suite, "{\"customerId\": \"c\", \"lines\": [", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, "[1, 2, 3]", HttpStatusCode.BadRequest);
        await AssertProblemAsync(suite, Body("c", ("978-9-99-999999-9", 1)), HttpStatusCode.BadRequest, "lines[0].isbn");
        await AssertProblemAsync(suite, Body("c", (Plentiful[0], 0)), HttpStatusCode.BadRequest, "lines[0].quantity");
        await AssertProblemAsync(suite, Body("c", (Plentiful[0], 10_000)), HttpStatusCode.BadRequest, "lines[0].quantity");
        await AssertProblemAsync(suite, Body(string.Empty, (Plentiful[0], 1)), HttpStatusCode.BadRequest, "customerId");
        await AssertProblemAsync(suite, Body("c", [.. Enumerable.Range(0, 51).Select(i => ($"978-0-00-{i:D6}-0", 1))]), HttpStatusCode.BadRequest, "lines");
        await AssertProblemAsync(suite, "{\"customerId\": \"" + new string('x', 200_000) + "\", \"lines\": []}", HttpStatusCode.RequestEntityTooLarge);

        Assert.Equal(before, await suite["Orders"].GetAsync<OrderStats>("/orders/stats"));
    }

    private static async Task<Dictionary<string, OrderView>> RunAndVerifyAsync(BookstoreSuite suite, string? killHalfway)
    {
        var initial = (await suite["Inventory"].GetAsync<List<BookView>>("/books")).ToDictionary(b => b.Isbn);
        var plan = Enumerable.Range(0, Orders).Select(i => (Customer: $"customer-{i % 17}", Lines: LinesFor(i))).ToList();
        var placed = new List<string>();

        // A quarter of the orders go in while the payment gateway fails; some ask for books that run out.
        await PlaceBatchAsync(suite, plan[..50], placed);
        await WaitTerminalAsync(suite, placed[..50]);
        await SetGatewayAsync(suite, failureRate: 1);
        await PlaceBatchAsync(suite, plan[50..100], placed);
        await WaitTerminalAsync(suite, placed[50..100]);
        await SetGatewayAsync(suite, failureRate: 0);
        if (killHalfway is not null)
        {
            // Killed with work in flight: some of the batch decided, some not, charges under way
            // (a slower gateway keeps them under way long enough to be caught).
            await SetGatewayAsync(suite, failureRate: 0, latencyMs: 300);
            var before = await suite["Orders"].GetAsync<OrderStats>("/orders/stats");
            var inFlight = PlaceBatchAsync(suite, plan[100..150], placed);
            var caughtInFlight = await Poll.UntilAsync(
                async _ =>
                {
                    var now = await suite["Orders"].GetAsync<OrderStats>("/orders/stats");
                    return now.OrdersConfirmed + now.OrdersCancelled >= before.OrdersConfirmed + before.OrdersCancelled + 5 && now.OrdersPending > 0;
                },
                SagaDeadline,
                TimeSpan.FromMilliseconds(50));
            Assert.True(caughtInFlight, "some orders of the batch decided while others were still pending");
            await suite.KillAndRestartAsync(killHalfway);
            await inFlight;
            await SetGatewayAsync(suite, failureRate: 0);
        }
        else
        {
            await PlaceBatchAsync(suite, plan[100..150], placed);
        }

        await PlaceBatchAsync(suite, plan[150..], placed);
        var orders = await WaitTerminalAsync(suite, placed);

        Assert.Equal(Orders, orders.Count);
        Assert.All(orders.Values, o => Assert.True(o.Status == "Confirmed" || (o.Status == "Cancelled" && !string.IsNullOrEmpty(o.Reason)), $"{o.Id}: {o.Status} {o.Reason}"));
        Assert.Contains(orders.Values, o => o.Status == "Confirmed");
        Assert.Contains(orders.Values, o => o.Reason?.StartsWith("out of stock", StringComparison.Ordinal) == true);
        Assert.Contains(orders.Values, o => o.Reason?.StartsWith("payment failed", StringComparison.Ordinal) == true);

        // Stock: nothing negative, nothing left reserved, and every book down by exactly what was confirmed.
        var confirmed = orders.Values.Where(o => o.Status == "Confirmed").SelectMany(o => o.Lines).GroupBy(l => l.Isbn).ToDictionary(g => g.Key, g => g.Sum(l => l.Quantity));
        List<BookView> books = [];
        var settled = await Poll.UntilAsync(
            async _ =>
            {
                books = await suite["Inventory"].GetAsync<List<BookView>>("/books");
                return books.All(b => b.Reserved == 0 && b.Stock == initial[b.Isbn].Stock - confirmed.GetValueOrDefault(b.Isbn));
            },
            SagaDeadline,
            TimeSpan.FromMilliseconds(500));
        Assert.All(books, b => Assert.True(b.Stock >= 0 && b.Reserved >= 0, $"{b.Isbn}: stock {b.Stock}, reserved {b.Reserved}"));
        Assert.True(settled, "stock = initial - confirmed and nothing reserved: " + string.Join("; ", books
            .Where(b => b.Reserved != 0 || b.Stock != initial[b.Isbn].Stock - confirmed.GetValueOrDefault(b.Isbn))
            .Select(b => $"{b.Isbn} stock {b.Stock} (initial {initial[b.Isbn].Stock}, confirmed {confirmed.GetValueOrDefault(b.Isbn)}) reserved {b.Reserved}")));

        // Payments: confirmed orders charged once; no cancelled order keeps a charge.
        foreach (var order in orders.Values)
        {
            var response = await suite.Payments.GetAsync(new Uri($"/payments/{order.Id}", UriKind.Relative));
            if (order.Status == "Confirmed")
            {
                var payment = (await response.Content.ReadFromJsonAsync<PaymentView>())!;
                Assert.Equal(("Succeeded", order.Total), (payment.Status, payment.Amount));
            }
            else if (response.IsSuccessStatusCode)
            {
                Assert.NotEqual("Succeeded", (await response.Content.ReadFromJsonAsync<PaymentView>())!.Status);
            }
        }

        // One notification per state change: received, then confirmed or cancelled.
        var notified = await Poll.UntilAsync(
            async _ => (await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications")).Count >= 2 * Orders,
            SagaDeadline,
            TimeSpan.FromMilliseconds(500));
        var notifications = await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications");
        Assert.True(notified, $"{notifications.Count} notifications for {Orders} orders");
        foreach (var order in orders.Values)
        {
            var kinds = notifications.Where(n => n.OrderId == order.Id).Select(n => n.Kind).Order().ToList();
            Assert.Equal(new[] { "received", order.Status.ToLowerInvariant() }.Order(), kinds);
        }

        // Analytics agrees with the Order Service, and a replay from the earliest offset agrees too.
        var stats = await suite["Orders"].GetAsync<OrderStats>("/orders/stats");
        Assert.Equal((Orders, 0L), (stats.OrdersPlaced, stats.OrdersPending));
        SummaryView summary = null!;
        var agreed = await Poll.UntilAsync(
            async _ =>
            {
                summary = await suite["Analytics"].GetAsync<SummaryView>("/analytics/summary");
                return (summary.OrdersPlaced, summary.OrdersConfirmed, summary.OrdersCancelled, summary.Revenue) == (stats.OrdersPlaced, stats.OrdersConfirmed, stats.OrdersCancelled, stats.Revenue);
            },
            SagaDeadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(agreed, $"analytics {summary} = orders {stats}");
        var replay = await suite.Analytics.PostAsync(new Uri("/analytics/replay", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        var replayed = (await replay.Content.ReadFromJsonAsync<ReplayView>())!.Summary;
        Assert.Equal(
            (summary.OrdersPlaced, summary.OrdersConfirmed, summary.OrdersCancelled, summary.Revenue, JsonSerializer.Serialize(summary.TopBooks)),
            (replayed.OrdersPlaced, replayed.OrdersConfirmed, replayed.OrdersCancelled, replayed.Revenue, JsonSerializer.Serialize(replayed.TopBooks)));
        return orders;
    }

    private static List<(string Isbn, int Quantity)> LinesFor(int i) => (i % 5) switch
    {
        0 => [(Scarce[i % 2], 1 + (i % 2))],
        1 => [(Plentiful[i % Plentiful.Length], 1 + (i % 3)), (Plentiful[(i + 1) % Plentiful.Length], 1)],
        _ => [(Plentiful[i % Plentiful.Length], 1 + (i % 4))],
    };

    private static async Task PlaceBatchAsync(BookstoreSuite suite, List<(string Customer, List<(string Isbn, int Quantity)> Lines)> batch, List<string> placed)
    {
        var ids = new string[batch.Count];
        await Parallel.ForAsync(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            ids[i] = await PlaceAsync(suite, batch[i].Customer, batch[i].Lines));
        lock (placed)
        {
            placed.AddRange(ids);
        }
    }

    /// <summary>Places an order; retries with the same idempotency key while the Order Service
    /// restarts, so a retried request can never create a second order.</summary>
    private static async Task<string> PlaceAsync(BookstoreSuite suite, string customer, List<(string Isbn, int Quantity)> lines)
    {
        var key = Guid.NewGuid().ToString();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/orders") { Content = new StringContent(Body(customer, [.. lines]), Encoding.UTF8, "application/json") };
                request.Headers.Add("Idempotency-Key", key);
                var response = await suite.Orders.SendAsync(request);
                Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST /orders: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                return (await response.Content.ReadFromJsonAsync<OrderView>())!.Id;
            }
            catch (HttpRequestException) when (attempt < 200)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task<Dictionary<string, OrderView>> WaitTerminalAsync(BookstoreSuite suite, List<string> ids)
    {
        var final = new Dictionary<string, OrderView>();
        var done = await Poll.UntilAsync(
            async _ =>
            {
                foreach (var id in ids.Where(id => !final.ContainsKey(id)))
                {
                    try
                    {
                        var order = await suite["Orders"].GetAsync<OrderView>($"/orders/{id}");
                        if (order.Status != "Pending")
                        {
                            final[id] = order;
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return false; // restarting
                    }
                }

                return final.Count == ids.Count;
            },
            SagaDeadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(done, $"{ids.Count - final.Count} of {ids.Count} orders still pending after {SagaDeadline}");
        return final;
    }

    private static Task SetGatewayAsync(BookstoreSuite suite, double failureRate, int latencyMs = 0) =>
        SetGatewayAsync(suite, suite.Payments, failureRate, latencyMs);

    /// <summary>Sets the simulated gateway's settings through the Payment instance <paramref name="payments"/>; the others read them from the gateway's database within a second.</summary>
    private static async Task SetGatewayAsync(BookstoreSuite suite, HttpClient payments, double failureRate, int latencyMs)
    {
        // The suite's clients send the admin key.
        var response = await payments.PutAsJsonAsync("/admin/gateway", new { failureRate, latencyMs });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task AssertProblemAsync(BookstoreSuite suite, string body, HttpStatusCode expected, string? field = null)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await suite.Orders.PostAsync(new Uri("/orders", UriKind.Relative), content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{(int)response.StatusCode} for {body[..Math.Min(body.Length, 80)]}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(text);
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
        if (field is not null)
        {
            Assert.True(problem.RootElement.GetProperty("errors").TryGetProperty(field, out _), $"{field} named in {text}");
        }
    }

    private static string Body(string customer, params (string Isbn, int Quantity)[] lines) =>
        JsonSerializer.Serialize(new { customerId = customer, lines = lines.Select(l => new { isbn = l.Isbn, quantity = l.Quantity }) });

    private sealed record LineView(string Isbn, int Quantity, decimal UnitPrice);

    private sealed record OrderView(string Id, string CustomerId, string Status, string? Reason, List<LineView> Lines, decimal Total);

    private sealed record BookView(string Isbn, string Title, decimal Price, int Stock, int Reserved);

    private sealed record PaymentView(string OrderId, string? PaymentId, decimal Amount, string Status, string? Reason);

    private sealed record NotificationView(string Id, string CustomerId, string? OrderId, string Kind);

    private sealed record OrderStats(long OrdersPlaced, long OrdersConfirmed, long OrdersCancelled, long OrdersPending, decimal Revenue);

    private sealed record BookSalesView(string Isbn, long Quantity, decimal Revenue);

    private sealed record TopicCountView(string Topic, long Events);

    private sealed record SummaryView(long OrdersPlaced, long OrdersConfirmed, long OrdersCancelled, decimal Revenue, List<BookSalesView> TopBooks, List<TopicCountView> EventsByTopic);

    private sealed record ReplayView(long EventsRead, SummaryView Summary);
}

[Collection(KafkaCollection.Name)]
public sealed class SagaTestsOnSqlite(KafkaClusterFixture fixture) : SagaTests(fixture, StorageBackend.Sqlite);

[Collection(KafkaCollection.Name)]
public sealed class SagaTestsOnPostgres(KafkaClusterFixture fixture) : SagaTests(fixture, StorageBackend.Postgres);
