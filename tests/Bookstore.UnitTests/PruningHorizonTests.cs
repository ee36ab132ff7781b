using Bookstore.Contracts;
using Bookstore.Messaging.Consuming;

namespace Bookstore.UnitTests;

/// <summary>A processed-event record may go only once Kafka can no longer deliver its event again.</summary>
public sealed class PruningHorizonTests
{
    [Fact]
    public void The_horizon_outlasts_the_longest_retained_topic_consumed_by_a_whole_segment_and_the_retention_check()
    {
        var consumed = new[] { Topics.BookOrders, Topics.PaymentResults, Topics.DeadLetters };

        var horizon = Pruner.SafeHorizon(consumed);

        // Kafka deletes a segment once its newest record is older than retention.ms, checked every
        // log.retention.check.interval.ms: the oldest record of a segment lives up to a segment's age longer.
        var latestDeletion = Topics.DeadLetters.Retention + Pruner.SegmentAge + Pruner.RetentionCheckInterval;
        Assert.True(horizon > latestDeletion, $"{horizon} > {latestDeletion}");
    }

    [Fact]
    public void Compacted_topics_do_not_set_the_horizon_because_their_handlers_are_idempotent_by_nature()
    {
        var horizon = Pruner.SafeHorizon([Topics.BookCatalogUpdates with { Retention = TimeSpan.FromDays(365) }, Topics.InventoryEvents]);

        Assert.True(horizon < TimeSpan.FromDays(365));
        Assert.True(horizon > Topics.InventoryEvents.Retention + Pruner.SegmentAge);
    }
}
