using System.Net.Http.Json;
using Bookstore.Contracts;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Confluent.Kafka;
using Dapper;

namespace Bookstore.IntegrationTests;

public abstract partial class SagaTests
{
    private const string LastCopy = "978-0-00-000002-8";

    /// <summary>Three Inventory instances split the orders' partitions and race for the same ten
    /// copies. On PostgreSQL each runs in a working directory of its own and the instances share
    /// nothing but Kafka and the database server: the row lock of the one conditional update is all
    /// that stands between them and an oversell.</summary>
    [Fact]
    public async Task Three_inventory_instances_racing_for_ten_copies_confirm_exactly_ten_and_cancel_the_rest()
    {
        await using var suite = await BookstoreSuite.StartAsync(fixture, backend, "ten-copies");
        var book = await suite["Inventory"].GetAsync<BookView>($"/books/{LastCopy}");
        var restock = await suite.Inventory.PutAsJsonAsync($"/books/{LastCopy}", new { restock = 10 - book.Stock });
        restock.EnsureSuccessStatusCode();
        await suite.StartAnotherInstanceAsync("Inventory");
        await suite.StartAnotherInstanceAsync("Inventory");
        await WaitForMembersAsync(suite, ConsumerGroups.Inventory, members: 3);

        var ids = new List<string>();
        await PlaceBatchAsync(suite, [.. Enumerable.Range(0, 40).Select(i => ($"racer-{i}", new List<(string, int)> { (LastCopy, 1) }))], ids);
        var orders = await WaitTerminalAsync(suite, ids);

        Assert.Equal(10, orders.Values.Count(o => o.Status == "Confirmed"));
        Assert.All(orders.Values.Where(o => o.Status != "Confirmed"), o => Assert.Equal("Cancelled", o.Status));
        Assert.True(
            await Poll.UntilAsync(async _ => (await suite["Inventory"].GetAsync<BookView>($"/books/{LastCopy}")) is { Stock: 0, Reserved: 0 }, SagaDeadline),
            "every copy sold, none reserved, none below zero");
        if (backend == StorageBackend.Postgres)
        {
            // Everything on the server, nothing on a host: each service's own database holds what it did.
            var groups = new Dictionary<string, string>
            {
                ["Orders"] = ConsumerGroups.Orders,
                ["Inventory"] = ConsumerGroups.Inventory,
                ["Payments"] = ConsumerGroups.Payments,
                ["Notifications"] = ConsumerGroups.Notifications,
                ["Analytics"] = ConsumerGroups.Analytics,
            };
            foreach (var name in BookstoreSuite.Names)
            {
                await using var connection = await suite.Database(name).OpenAsync();
                Assert.Equal(suite.Namespace + groups[name], connection.ExecuteScalar<string>("SELECT service FROM database_owner"));
                Assert.True(connection.ExecuteScalar<long>("SELECT count(*) FROM processed_events") > 0, $"{name} recorded the events it handled in its PostgreSQL database");
            }

            await using (var inventory = await suite.Database("Inventory").OpenAsync())
            {
                Assert.Equal(40, inventory.ExecuteScalar<long>("SELECT count(*) FROM reservations"));
            }

            await using (var gateway = await suite.Database("Gateway").OpenAsync())
            {
                Assert.Equal(10, gateway.ExecuteScalar<long>("SELECT count(*) FROM ledger"));
            }

            Assert.Empty(Directory.EnumerateFiles(suite.DataDirectory, "*.db*", SearchOption.AllDirectories));
        }
    }

    private async Task WaitForMembersAsync(BookstoreSuite suite, string group, int members)
    {
        using var inspector = new ConsumerGroupInspector(fixture.Connection, "saga-test-inspector");
        var orders = suite.Namespace + Topics.BookOrders.Name;
        var seen = await Poll.UntilAsync(
            async _ =>
            {
                try
                {
                    var status = (await inspector.DescribeAsync([suite.Namespace + group])).Single();
                    return status.State == "Stable" && status.Members.Count == members
                        && status.Members.All(m => m.Partitions.Any(p => p.Topic == orders));
                }
                catch (KafkaException)
                {
                    return false;
                }
            },
            SagaDeadline,
            TimeSpan.FromMilliseconds(250));
        Assert.True(seen, $"{members} members of {group}, each reading {orders}");
    }
}
