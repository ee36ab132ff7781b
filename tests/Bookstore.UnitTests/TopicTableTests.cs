using Bookstore.Contracts;

namespace Bookstore.UnitTests;

public sealed class TopicTableTests
{
    [Fact]
    public void The_table_holds_the_five_topics_of_the_course_chapter()
    {
        Assert.Equal(
            ["book-orders", "inventory-events", "payment-results", "notification-events", "book-catalog-updates"],
            Topics.Seed.Select(t => t.Name));
        Assert.Subset(Topics.All.ToHashSet(), Topics.Seed.ToHashSet());
        Assert.Equal(Topics.All.Count, Topics.All.Select(t => t.Name).Distinct().Count());
    }

    [Fact]
    public void Every_topic_survives_a_broker_loss_without_losing_acknowledged_writes()
    {
        Assert.All(Topics.All, t =>
        {
            Assert.Equal(3, t.ReplicationFactor);
            Assert.Equal(2, t.MinInSyncReplicas);
            Assert.True(t.Retention >= TimeSpan.FromDays(1), $"{t.Name} keeps at least a day");
        });
    }

    [Fact]
    public void Book_orders_has_enough_partitions_for_a_work_queue_of_three()
    {
        Assert.Equal(6, Topics.BookOrders.Partitions);
        Assert.Equal(0, Topics.BookOrders.Partitions % 3);
    }

    [Fact]
    public void The_catalog_is_compacted_and_the_event_topics_are_not()
    {
        Assert.Equal("compact", Topics.BookCatalogUpdates.Configs()["cleanup.policy"]);
        Assert.All(Topics.All.Where(t => t != Topics.BookCatalogUpdates), t => Assert.Equal("delete", t.Configs()["cleanup.policy"]));
    }

    [Fact]
    public void Configs_use_kafkas_own_property_names()
    {
        var configs = Topics.BookOrders.Configs();
        Assert.Equal("2", configs["min.insync.replicas"]);
        Assert.Equal((7L * 24 * 3600 * 1000).ToString(System.Globalization.CultureInfo.InvariantCulture), configs["retention.ms"]);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 2, 2)]
    [InlineData(3, 3, 2)]
    [InlineData(5, 3, 2)]
    public void Replication_is_capped_to_the_brokers_there_are(int brokers, int replicas, int minInSync)
    {
        var capped = Topics.BookOrders.CappedTo(brokers);
        Assert.Equal(replicas, capped.ReplicationFactor);
        Assert.Equal(minInSync, capped.MinInSyncReplicas);
        Assert.Equal(Topics.BookOrders.Partitions, capped.Partitions);
    }

    [Fact]
    public void An_unknown_topic_name_is_an_error_that_lists_the_known_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => Topics.Get("book-order"));
        Assert.Contains("book-orders", error.Message, StringComparison.Ordinal);
        Assert.Same(Topics.PaymentResults, Topics.Get("payment-results"));
    }
}
