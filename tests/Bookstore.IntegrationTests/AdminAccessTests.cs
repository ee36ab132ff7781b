using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Events;

namespace Bookstore.IntegrationTests;

/// <summary>Issue item 8, on the five services as processes: admin and bulk endpoints take the
/// admin key (401 without or with a wrong one, 403 where none is configured), and no customer
/// sees another's orders or emails, nor puts a header into one.</summary>
[Collection(KafkaCollection.Name)]
public sealed class AdminAccessTests(KafkaClusterFixture fixture)
{
    private const string Isbn = "978-1-4920-4346-3";
    private const string Injected = "alice\r\nBcc: x@evil.example";

    [Fact]
    public async Task Admin_endpoints_refuse_a_missing_or_wrong_key_and_serve_the_right_one()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, "admin");
        var before = await suite["Inventory"].GetAsync<BookView>($"/books/{Isbn}");
        var catalogRead = await Poll.UntilAsync(
            async _ => (await suite["Analytics"].GetAsync<List<JsonElement>>("/dashboard/books")).Count > 0,
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(catalogRead, "the dashboard has read the catalog (a burst needs it)");

        var endpoints = new (ServiceProcess Service, HttpMethod Method, string Path, object? Body, HttpStatusCode Success)[]
        {
            (suite["Inventory"], HttpMethod.Put, $"/books/{Isbn}", new { restock = 5 }, HttpStatusCode.OK),
            (suite["Payments"], HttpMethod.Put, "/admin/gateway", new { failureRate = 0, latencyMs = 0 }, HttpStatusCode.OK),
            (suite["Payments"], HttpMethod.Get, "/admin/gateway", null, HttpStatusCode.OK),
            (suite["Payments"], HttpMethod.Get, "/admin/gateway/ledger", null, HttpStatusCode.OK),
            (suite["Analytics"], HttpMethod.Post, "/analytics/replay", null, HttpStatusCode.OK),
            (suite["Analytics"], HttpMethod.Post, "/dashboard/burst", new { orders = 2 }, HttpStatusCode.Accepted),
        };
        foreach (var (service, method, path, body, success) in endpoints)
        {
            var missing = await SendAsync(service.HttpWithoutKey, method, path, body, key: null);
            await AssertProblemAsync(missing, HttpStatusCode.Unauthorized, $"{method} {service.Name}{path} without a key");
            Assert.Contains("X-Api-Key", missing.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

            var wrong = await SendAsync(service.HttpWithoutKey, method, path, body, key: suite.AdminKey[..^1] + (suite.AdminKey[^1] == '0' ? '1' : '0'));
            await AssertProblemAsync(wrong, HttpStatusCode.Unauthorized, $"{method} {service.Name}{path} with a wrong key");

            var right = await SendAsync(service.HttpWithoutKey, method, path, body, key: suite.AdminKey);
            Assert.True(success == right.StatusCode, $"{method} {service.Name}{path} with the key: {(int)right.StatusCode} {await right.Content.ReadAsStringAsync()}");
        }

        // Only the one accepted restock changed the stock; the refused ones did nothing.
        Assert.Equal(before.Stock + 5, (await suite["Inventory"].GetAsync<BookView>($"/books/{Isbn}")).Stock);

        // The API document says which operations need the key, and in which header.
        var openApi = await suite["Payments"].GetAsync<JsonElement>("/openapi/v1.json");
        var scheme = openApi.GetProperty("components").GetProperty("securitySchemes").GetProperty("AdminApiKey");
        Assert.Equal(("apiKey", "header", "X-Api-Key"), (scheme.GetProperty("type").GetString(), scheme.GetProperty("in").GetString(), scheme.GetProperty("name").GetString()));
        var put = openApi.GetProperty("paths").GetProperty("/admin/gateway").GetProperty("put");
        Assert.True(put.GetProperty("security")[0].TryGetProperty("AdminApiKey", out _), put.ToString());
        Assert.True(put.GetProperty("responses").TryGetProperty("401", out _), put.ToString());
        Assert.False(openApi.GetProperty("paths").GetProperty("/payments/{orderId}").GetProperty("get").TryGetProperty("security", out _), "reading a payment needs no key");

        // An instance started without a key keeps its admin endpoints shut, whatever is sent.
        var keyless = await suite.StartAnotherInstanceAsync("Payments", new Dictionary<string, string?> { ["Admin__ApiKey"] = string.Empty });
        var refused = await SendAsync(keyless.HttpWithoutKey, HttpMethod.Put, "/admin/gateway", new { failureRate = 1, latencyMs = 0 }, key: suite.AdminKey);
        var text = await AssertProblemAsync(refused, HttpStatusCode.Forbidden, "PUT /admin/gateway on an instance without a key");
        Assert.Contains("no admin key configured", text, StringComparison.Ordinal);
        await AssertProblemAsync(await SendAsync(keyless.HttpWithoutKey, HttpMethod.Put, "/admin/gateway", new { failureRate = 1, latencyMs = 0 }, key: string.Empty), HttpStatusCode.Forbidden, "the same with an empty key");
    }

    [Fact]
    public async Task Customers_see_neither_another_customers_order_through_an_idempotency_key_nor_everyones_emails()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, "privacy");
        var key = Guid.NewGuid().ToString();

        var alice = await PlaceAsync(suite, "alice", quantity: 1, key);
        Assert.Equal(HttpStatusCode.Accepted, alice.StatusCode);
        var aliceOrder = (await alice.Content.ReadFromJsonAsync<OrderView>())!;

        // Bob happens to send the same key: his own new order, nothing of Alice's.
        var bob = await PlaceAsync(suite, "bob", quantity: 2, key);
        var bobText = await bob.Content.ReadAsStringAsync();
        Assert.True(bob.StatusCode == HttpStatusCode.Accepted, $"bob with alice's key: {(int)bob.StatusCode} {bobText}");
        var bobOrder = JsonSerializer.Deserialize<OrderView>(bobText, EventSerializer.Options)!;
        Assert.NotEqual(aliceOrder.Id, bobOrder.Id);
        Assert.Equal("bob", bobOrder.CustomerId);
        Assert.DoesNotContain(aliceOrder.Id, bobText, StringComparison.Ordinal);

        // Alice reuses her key for another request: refused, without naming the first order.
        var reused = await PlaceAsync(suite, "alice", quantity: 3, key);
        var reusedText = await AssertProblemAsync(reused, HttpStatusCode.UnprocessableEntity, "alice reusing her key for another request");
        Assert.DoesNotContain(aliceOrder.Id, reusedText, StringComparison.Ordinal);

        // Alice retries the same request: her first order again, not a second one.
        var retried = await PlaceAsync(suite, "alice", quantity: 1, key);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal(aliceOrder.Id, (await retried.Content.ReadFromJsonAsync<OrderView>())!.Id);
        Assert.True(retried.Headers.Contains("Idempotent-Replayed"));

        // Emails: one's own by customer or order; everyone's only with the admin key.
        var notified = await Poll.UntilAsync(
            async _ => (await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications?customerId=alice")).Count > 0
                && (await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications?customerId=bob")).Count > 0,
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(notified, "alice and bob were notified");
        var aliceMails = await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications?customerId=alice");
        Assert.All(aliceMails, n => Assert.Equal("alice", n.CustomerId));
        var byOrder = await suite["Notifications"].GetAsync<List<NotificationView>>($"/notifications?orderId={bobOrder.Id}");
        Assert.All(byOrder, n => Assert.Equal(("bob", bobOrder.Id), (n.CustomerId, n.OrderId)));

        var everyone = await suite.Notifications.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/notifications"));
        Assert.Equal(HttpStatusCode.OK, everyone.StatusCode);
        Assert.Equal(["alice", "bob"], (await everyone.Content.ReadFromJsonAsync<List<NotificationView>>())!.Select(n => n.CustomerId).Distinct().Order());

        var unfiltered = await SendAsync(suite["Notifications"].HttpWithoutKey, HttpMethod.Get, "/notifications", null, key: null);
        var unfilteredText = await AssertProblemAsync(unfiltered, HttpStatusCode.BadRequest, "GET /notifications with no customer, no order, no key");
        Assert.DoesNotContain("alice", unfilteredText, StringComparison.Ordinal);
        await AssertProblemAsync(await SendAsync(suite["Notifications"].HttpWithoutKey, HttpMethod.Get, "/notifications", null, key: "not-the-key"), HttpStatusCode.Unauthorized, "GET /notifications with a wrong key");
    }

    [Fact]
    public async Task Customer_ids_that_could_inject_an_email_header_are_refused_at_the_api_and_dead_lettered_from_kafka()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, "customerids");
        var before = await suite["Orders"].GetAsync<JsonElement>("/orders/stats");

        foreach (var customerId in new[] { Injected, "alice\n", "alice@evil.example", "alice, bob", new string('a', 65) })
        {
            var response = await PlaceAsync(suite, customerId, quantity: 1, idempotencyKey: null);
            var text = await AssertProblemAsync(response, HttpStatusCode.BadRequest, $"customer id {JsonSerializer.Serialize(customerId)}");
            Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("errors").TryGetProperty("customerId", out _), text);
        }

        // The dashboard's single order goes through the same check.
        var demo = await suite.Analytics.PostAsJsonAsync(new Uri("/dashboard/orders", UriKind.Relative), new { isbn = Isbn, quantity = 1, customerId = Injected });
        await AssertProblemAsync(demo, HttpStatusCode.BadRequest, "a dashboard order for an injected customer id");
        Assert.Equal(before.GetProperty("ordersPlaced").GetInt64(), (await suite["Orders"].GetAsync<JsonElement>("/orders/stats")).GetProperty("ordersPlaced").GetInt64());

        // Kafka is not behind the API: a NotificationRequested with such an id is dead-lettered by
        // the Notification Service, no email is recorded, and the next request is served.
        var poison = EventSerializer.Serialize(EventCatalog.NotificationRequested, new NotificationRequested(Injected, "Hello", "Injected?", null), "test");
        var fine = EventSerializer.Serialize(EventCatalog.NotificationRequested, new NotificationRequested("carol", "Hello", "Fine.", null), "test");
        var sent = await TestClients.ProduceAllAsync(fixture.Connection, suite.Namespace + Topics.NotificationEvents.Name, [(poison.Key, poison.Value), (fine.Key, fine.Value)]);

        var carolNotified = await Poll.UntilAsync(
            async _ => (await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications?customerId=carol")).Count == 1,
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(carolNotified, "the request after the poisoned one is served");
        List<DeadLetter> letters = [];
        var deadLettered = await Poll.UntilAsync(
            () =>
            {
                letters = [.. TestClients.ReadToEnd(fixture.Connection, suite.Namespace + Topics.DeadLetters.Name, Topics.DeadLetters.Partitions)
                    .Select(r => JsonSerializer.Deserialize<DeadLetter>(r.Message.Value, EventSerializer.Options)!)
                    .Where(l => l.EventId == poison.EventId)];
                return letters.Count > 0;
            },
            TestClients.Deadline,
            TimeSpan.FromMilliseconds(500));
        Assert.True(deadLettered, $"NotificationRequested {poison.EventId} dead-lettered");
        var letter = Assert.Single(letters);
        Assert.Equal((suite.Namespace + ConsumerGroups.Notifications, Topics.NotificationEvents.Name, sent[0].Offset.Value), (letter.Group, letter.Topic, letter.Offset));
        Assert.Equal(nameof(PoisonMessageException), letter.ErrorType);
        var all = await suite["Notifications"].GetAsync<List<NotificationView>>("/notifications");
        Assert.DoesNotContain(all, n => n.CustomerId.Contains('\n', StringComparison.Ordinal) || n.CustomerId.Contains('\r', StringComparison.Ordinal));
    }

    private static async Task<HttpResponseMessage> PlaceAsync(BookstoreSuite suite, string customerId, int quantity, string? idempotencyKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/orders")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { customerId, lines = new[] { new { isbn = Isbn, quantity } } }), Encoding.UTF8, "application/json"),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return await suite["Orders"].HttpWithoutKey.SendAsync(request);
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, object? body, string? key)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Api-Key", key);
        }

        return await http.SendAsync(request);
    }

    /// <summary>RFC 7807 problem details with <paramref name="expected"/>; returns the body.</summary>
    private static async Task<string> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected, string what)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{what}: {(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(text);
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
        return text;
    }

    private sealed record BookView(string Isbn, decimal Price, int Stock, int Reserved);

    private sealed record OrderView(string Id, string CustomerId, string Status);

    private sealed record NotificationView(string Id, string CustomerId, string? OrderId, string Kind);
}
