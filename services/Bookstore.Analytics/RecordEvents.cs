using Bookstore.Analytics.Data;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;

namespace Bookstore.Analytics;

/// <summary>Every event of every topic becomes a fact; an order's event also a step of its journey.</summary>
public sealed class RecordEvent : IAnyEventHandler
{
    public Task HandleAsync(EventContext context, EventDefinition definition, object data, CancellationToken cancellationToken) =>
        AnalyticsStore.RecordAsync(context.Transaction, context.Event, context.Topic, context.Partition, context.Offset, definition, data);
}
