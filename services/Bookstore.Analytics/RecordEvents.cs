using Bookstore.Analytics.Data;
using Bookstore.Messaging.Consuming;
using System.Data.Common;

namespace Bookstore.Analytics;

/// <summary>Every event of every topic becomes a fact; an order's event also a step of its journey.</summary>
public sealed class RecordEvents : IEventBatchHandler
{
    public Task HandleAsync(DbTransaction transaction, IReadOnlyList<ConsumedEvent> events, CancellationToken cancellationToken) =>
        AnalyticsStore.RecordAsync(transaction, events);
}
