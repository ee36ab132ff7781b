using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Dapper;
using System.Data.Common;

namespace Bookstore.IntegrationTests;

/// <summary>Analytics' facts folded into roll-ups keep every figure, and a replay of the retained
/// log neither destroys nor double-counts them.</summary>
public abstract partial class SagaTests
{
    [Fact]
    public async Task A_replay_after_analytics_folded_its_facts_keeps_every_figure_and_commits_in_several_transactions()
    {
        // Long enough that every event is recorded before its order is folded (a later one would be
        // older than the fold and not counted), short enough for a test.
        var horizon = TimeSpan.FromSeconds(20);
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "fold-replay", new Dictionary<string, string>
        {
            ["Messaging__Retention__AnalyticsFacts"] = horizon.ToString(),
            ["Messaging__PruneInterval"] = "00:00:00.5",
            ["Analytics__ReplayBatchSize"] = "40",
        });
        var ids = new List<string>();
        await PlaceBatchAsync(suite, [.. Enumerable.Range(0, 30).Select(i => ($"fold-{i}", LinesFor(i)))], ids);
        var orders = await WaitTerminalAsync(suite, ids);
        var stats = await suite["Orders"].GetAsync<OrderStats>("/orders/stats");

        // Every order's facts folded: none left, the figures still those of the Order Service.
        var analytics = suite.Database("Analytics");
        SummaryView folded = null!;
        long factsOfOrders = -1;
        Assert.True(
            await Poll.UntilAsync(
                async _ =>
                {
                    folded = await suite["Analytics"].GetAsync<SummaryView>("/analytics/summary");
                    factsOfOrders = await CountAsync(analytics, "SELECT count(*) FROM facts WHERE order_id IS NOT NULL");
                    return factsOfOrders == 0;
                },
                horizon + SagaDeadline,
                TimeSpan.FromMilliseconds(500)),
            $"the facts of every order are folded; {factsOfOrders} left");
        Assert.Equal(
            (stats.OrdersPlaced, stats.OrdersConfirmed, stats.OrdersCancelled, stats.Revenue),
            (folded.OrdersPlaced, folded.OrdersConfirmed, folded.OrdersCancelled, folded.Revenue));
        Assert.Equal(30, folded.OrdersPlaced);
        Assert.True(await CountAsync(analytics, "SELECT count(*) FROM rollup_orders") > 0, "the roll-up holds the folded orders");
        // Their journeys went with their facts, in the same transaction.
        Assert.Equal(0, await CountAsync(analytics, "SELECT count(*) FROM journey_events"));

        // The whole log is still retained: a replay reads every event again and must count none twice.
        var response = await suite.Analytics.PostAsync(new Uri("/analytics/replay", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var replay = (await response.Content.ReadFromJsonAsync<FoldedReplayView>())!;
        Assert.True(replay.EventsRead >= 30 * 4, $"{replay.EventsRead} events read");
        Assert.Equal(0, replay.Recorded);
        Assert.Equal(0, await CountAsync(analytics, "SELECT count(*) FROM journey_events")); // nor their journeys
        Assert.True(replay.Transactions >= replay.EventsRead / 40, $"{replay.Transactions} transaction(s) for {replay.EventsRead} events, 40 a transaction");
        var after = await suite["Analytics"].GetAsync<SummaryView>("/analytics/summary");
        foreach (var view in new[] { replay.Summary, after })
        {
            Assert.Equal(
                (folded.OrdersPlaced, folded.OrdersConfirmed, folded.OrdersCancelled, folded.Revenue, JsonSerializer.Serialize(folded.TopBooks), JsonSerializer.Serialize(folded.EventsByTopic)),
                (view.OrdersPlaced, view.OrdersConfirmed, view.OrdersCancelled, view.Revenue, JsonSerializer.Serialize(view.TopBooks), JsonSerializer.Serialize(view.EventsByTopic)));
        }

        // The live consumer carries on after the replay: a new order is counted on top.
        var last = await PlaceAsync(suite, "after-replay", [(Plentiful[0], 1)]);
        await WaitTerminalAsync(suite, [last]);
        Assert.True(
            await Poll.UntilAsync(async _ => (await suite["Analytics"].GetAsync<SummaryView>("/analytics/summary")).OrdersPlaced == 31, SagaDeadline),
            "the order placed after the replay is counted");
        Assert.Equal(30, orders.Count);
    }

    private static async Task<long> CountAsync(TestDatabase database, string sql)
    {
        await using var connection = await database.OpenAsync();
        return await connection.ExecuteScalarAsync<long>(sql);
    }

    private sealed record FoldedReplayView(long EventsRead, long Recorded, int Transactions, SummaryView Summary);
}
