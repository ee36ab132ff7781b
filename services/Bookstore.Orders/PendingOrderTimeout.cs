using Bookstore.Contracts.Events;
using Bookstore.Messaging;
using Bookstore.Messaging.Storage;
using Bookstore.Orders.Data;
using System.Data.Common;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Orders;

public sealed class OrderOptions
{
    /// <summary>An order still Pending after this long is cancelled (reason <c>timeout</c>) and the
    /// compensations run: stock is released, a charge that arrives later is refunded.</summary>
    public TimeSpan PendingTimeout { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>No order stays Pending for ever.</summary>
public sealed class PendingOrderTimeout(ServiceDatabase database, Outbox outbox, OrderOptions options, OrderMetrics metrics, ILogger<PendingOrderTimeout> logger) : BackgroundLoop
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await ExpireAsync(stoppingToken);
            }
            catch (DbException e)
            {
                logger.LogWarning(e, "Expiring pending orders failed; trying again");
            }
        }
    }

    private async Task ExpireAsync(CancellationToken cancellationToken)
    {
        var before = DateTimeOffset.UtcNow - options.PendingTimeout;
        await using var connection = await database.OpenAsync(cancellationToken);
        // A read first: the write lock is taken only when there is something to expire.
        if (!await Dapper.SqlMapper.ExecuteScalarAsync<bool>(connection, "SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'Pending' AND created_at < @before)", new { before = before.ToString("O") }))
        {
            return;
        }

        var expired = await database.WriteAsync(
            async transaction =>
            {
                var expired = await OrderStore.ExpireAsync(transaction, before, limit: 500);
                foreach (var (id, customerId) in expired)
                {
                    await OrderStore.AddHistoryAsync(transaction, id, "cancelled", $"timeout: still pending after {options.PendingTimeout.TotalSeconds} s", "order-service", null);
                    await outbox.AddAsync(transaction, new OrderCancelled(id, customerId, "timeout"));
                }

                return expired;
            },
            cancellationToken);
        if (expired.Count > 0)
        {
            outbox.Committed();
            // Pending for longer than the timeout; by how much more, this query does not read.
            metrics.Decided("cancelled", "timeout", sincePlaced: null, expired.Count);

            logger.LogWarning("Cancelled {Count} order(s) pending for more than {Timeout}", expired.Count, options.PendingTimeout);
        }
    }
}
