using Bookstore.LocalKafka;
using System.Net.Http.Json;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Bookstore.IntegrationTests;

/// <summary>The live dashboard in a real browser (Debian's headless Chromium driven by
/// Playwright), on the five services running as processes on the real cluster.</summary>
[Collection(KafkaCollection.Name)]
public sealed class DashboardTests(KafkaClusterFixture fixture)
{
    private const string Isbn = "978-1-4920-4346-3";

    [ChromiumFact]
    public async Task The_page_shows_topics_groups_an_order_reaching_Confirmed_and_a_rebalance()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, "dashboard");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Executable,
            Headless = true,
            Args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1600, Height = 1400 } });
        page.SetDefaultTimeout(60_000);
        SetDefaultExpectTimeout(60_000); // a loaded 2-core machine: states arrive within seconds, not instantly
        await page.GotoAsync(suite.Analytics.BaseAddress!.ToString());

        // All five topics, with their partitions, and all five groups with their one member each.
        foreach (var topic in Topics.Seed)
        {
            await Expect(page.Locator($"#topics [data-topic='{topic.Name}'] [data-partition]")).ToHaveCountAsync(topic.Partitions);
        }

        foreach (var (group, service) in ConsumerGroups.All.Zip(BookstoreSuite.Names))
        {
            await Expect(page.Locator($"#groups [data-group='{group}'][data-members='1'] [data-member='{group}-{suite[service].Pid}']")).ToBeVisibleAsync();
        }

        await Expect(page.Locator("#brokers [data-up='true']")).ToHaveCountAsync(fixture.Cluster.BrokerIds.Count);

        // An order placed through the page reaches Confirmed in the tail and the funnel.
        await Expect(page.Locator($"#isbn option[value='{Isbn}']")).ToHaveCountAsync(1);
        await page.Locator("#isbn").SelectOptionAsync(Isbn);
        await page.Locator("#quantity").FillAsync("2");
        await page.Locator("#place-order").ClickAsync();
        var placed = page.Locator("#order-result [data-order-id]");
        await Expect(placed).ToBeVisibleAsync();
        var orderId = await placed.GetAttributeAsync("data-order-id");
        Assert.StartsWith("ORD-", orderId, StringComparison.Ordinal);

        await Expect(page.Locator($"#tail tr[data-key='{orderId}'][data-type='{EventCatalog.OrderPlaced.TypeName}']")).ToBeVisibleAsync();
        await Expect(page.Locator($"#tail tr[data-key='{orderId}'][data-type='{EventCatalog.OrderConfirmed.TypeName}']")).ToBeVisibleAsync();
        await Expect(page.Locator("#funnel [data-stage='confirmed']")).ToHaveAttributeAsync("data-count", "1");
        await Expect(page.Locator("#funnel [data-stage='placed']")).ToHaveAttributeAsync("data-count", "1");
        var order = await suite.Orders.GetFromJsonAsync<JsonElement>($"/orders/{orderId}");
        Assert.Equal("Confirmed", order.GetProperty("status").GetString());

        // Its journey: an id Analytics does not know is said to be unknown; clicking one of the
        // order's events in the tail shows its journey, terminal, as a timeline.
        await page.Locator("#journey-order").FillAsync("ORD-none-such");
        await page.Locator("#show-journey").ClickAsync();
        await Expect(page.Locator("#journey [data-journey-error='404']")).ToBeVisibleAsync();
        await page.Locator($"#tail tr[data-order='{orderId}'][data-type='{EventCatalog.OrderConfirmed.TypeName}']").ClickAsync();
        await Expect(page.Locator("#journey-order")).ToHaveValueAsync(orderId!);
        var journey = page.Locator($"#journey[data-order-id='{orderId}']");
        await Expect(journey).ToHaveAttributeAsync("data-terminal", EventCatalog.OrderConfirmed.TypeName);
        await Expect(journey).ToHaveAttributeAsync("data-path-complete", "true");
        // Reserve, charge, confirm on the path, each with its outbox, Kafka and handling steps drawn.
        await Expect(journey.Locator("[data-hop][data-on-path='true']")).ToHaveCountAsync(3);
        await Expect(journey.Locator("[data-hop='payment-service'] [data-step='external-call']")).ToHaveCountAsync(1);
        await Expect(journey.Locator("[data-hop][data-on-path='true'] [data-step='in-kafka']")).ToHaveCountAsync(3);

        // A burst is bulk: the page asks for the admin key, says when it is wrong, and starts the
        // burst once it is right. The key is never part of the page.
        await page.Locator("#burst-size").FillAsync("3");
        await page.Locator("#start-burst").ClickAsync();
        await Expect(page.Locator("#admin-key")).ToBeVisibleAsync();
        await Expect(page.Locator("#order-result [data-admin-key-needed]")).ToContainTextAsync("admin key");
        await page.Locator("#admin-key").FillAsync("not-the-admin-key");
        await page.Locator("#start-burst").ClickAsync();
        await Expect(page.Locator("#order-result [data-admin-key-needed]")).ToContainTextAsync("401");
        await Expect(page.Locator("#funnel [data-stage='placed']")).ToHaveAttributeAsync("data-count", "1");
        await page.Locator("#admin-key").FillAsync(suite.AdminKey);
        await page.Locator("#start-burst").ClickAsync();
        await Expect(page.Locator("#admin-key")).ToBeHiddenAsync();
        await Expect(page.Locator("#funnel [data-stage='placed']")).ToHaveAttributeAsync("data-count", "4");
        Assert.DoesNotContain(suite.AdminKey, await page.ContentAsync(), StringComparison.Ordinal);

        // A second inventory instance joins: the page shows the rebalance and the new split.
        var second = await suite.StartAnotherInstanceAsync("Inventory");
        var first = $"{ConsumerGroups.Inventory}-{suite["Inventory"].Pid}";
        var joined = $"{ConsumerGroups.Inventory}-{second.Pid}";
        var rebalance = page.Locator($"#rebalances li[data-group='{ConsumerGroups.Inventory}'][data-members-after='2']")
            .Filter(new LocatorFilterOptions { HasText = $"joined: {joined}" });
        await Expect(rebalance.First).ToBeVisibleAsync();
        var inventory = page.Locator($"#groups [data-group='{ConsumerGroups.Inventory}'][data-members='2']");
        await Expect(inventory).ToBeVisibleAsync();
        foreach (var member in new[] { first, joined })
        {
            // Range assignment per topic: each instance owns three partitions of book-orders.
            await Expect(inventory.Locator($"[data-member='{member}'] [data-topic-partition^='{Topics.BookOrders.Name}/']")).ToHaveCountAsync(Topics.BookOrders.Partitions / 2);
        }

        var screenshot = Path.Combine(RepositoryRoot.Find(), ".bookstore", "test-results", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        Console.WriteLine($"dashboard screenshot: {screenshot}");
    }
}

/// <summary>Runs where Chromium is installed (CI installs Debian's package) and says so where it is not.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ChromiumFactAttribute : FactAttribute
{
    public static readonly string Executable = Environment.GetEnvironmentVariable("CHROMIUM_PATH") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Executable))
        {
            Skip = $"Chromium is not installed at {Executable} (Debian: apt-get install -y chromium; .ci/run installs it; CHROMIUM_PATH points elsewhere)";
        }
    }
}
