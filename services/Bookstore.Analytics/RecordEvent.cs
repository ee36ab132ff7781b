using Bookstore.Analytics.Data;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Consuming;

namespace Bookstore.Analytics;

/// <summary>Every event of every topic becomes a fact.</summary>
public sealed class RecordEvent : IAnyEventHandler
{
    public Task HandleAsync(EventContext context, EventDefinition definition, object data, CancellationToken cancellationToken) =>
        AnalyticsStore.RecordAsync(context.Transaction, context.Event.Id, context.Topic, definition, data, context.Event.Time);
}
