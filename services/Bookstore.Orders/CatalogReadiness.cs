using Bookstore.Contracts;
using Bookstore.Messaging;
using Confluent.Kafka;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Bookstore.Orders;

/// <summary>Orders are priced from the catalog, so the service is ready only once its group has
/// read <c>book-catalog-updates</c> to the end (as it was when first asked): its committed offsets
/// reach the partitions' end offsets. Once caught up it stays ready.</summary>
public sealed class CatalogReadiness(MessagingOptions options) : IHealthCheck, IDisposable
{
    private readonly Lazy<IConsumer<Ignore, Ignore>> _probe = new(() =>
        new ConsumerBuilder<Ignore, Ignore>(KafkaClientConfigs.Consumer(options.Connection(), options.GroupId, $"{options.ServiceName}-readiness"))
            .SetLogHandler((_, _) => { })
            .Build());

    private Dictionary<TopicPartition, long>? _target;
    private volatile bool _caughtUp;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (_caughtUp)
        {
            return Task.FromResult(HealthCheckResult.Healthy("catalog read"));
        }

        try
        {
            var consumer = _probe.Value;
            var topic = options.TopicName(Topics.BookCatalogUpdates.Name);
            _target ??= Enumerable.Range(0, Topics.BookCatalogUpdates.Partitions)
                .Select(p => new TopicPartition(topic, p))
                .ToDictionary(tp => tp, tp => consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(2)).High.Value);
            if (_target.Values.Sum() == 0)
            {
                _target = null;
                return Task.FromResult(HealthCheckResult.Unhealthy("waiting for the Inventory Service to publish the catalog"));
            }

            var committed = consumer.Committed(_target.Keys, TimeSpan.FromSeconds(2)).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
            var behind = _target.Where(t => t.Value > 0 && committed.GetValueOrDefault(t.Key, -1) < t.Value).ToList();
            if (behind.Count == 0)
            {
                _caughtUp = true;
                return Task.FromResult(HealthCheckResult.Healthy("catalog read"));
            }

            return Task.FromResult(HealthCheckResult.Unhealthy(
                $"reading the catalog: {string.Join(", ", behind.Select(b => $"partition {b.Key.Partition.Value} at {committed.GetValueOrDefault(b.Key, -1)} of {b.Value}"))}"));
        }
        catch (KafkaException e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"catalog: {e.Error.Reason}"));
        }
    }

    public void Dispose()
    {
        if (_probe.IsValueCreated)
        {
            _probe.Value.Dispose();
        }
    }
}
