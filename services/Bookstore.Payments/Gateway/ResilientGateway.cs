using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Bookstore.Payments.Gateway;

/// <summary>The gateway behind timeout, retry and circuit breaker: a slow call is abandoned, a
/// transient failure retried at once a few times, and a gateway that keeps failing is not hammered
/// while it recovers. Whatever still fails is thrown to the pending-work worker, which tries again
/// later. Retrying is safe because the gateway is idempotent per order.</summary>
public sealed class ResilientGateway(SimulatedGateway gateway, PaymentOptions options, ILogger<ResilientGateway> logger)
{
    private readonly ResiliencePipeline _pipeline = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<GatewayUnavailableException>().Handle<TimeoutRejectedException>(),
            MaxRetryAttempts = 3,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(20),
            OnRetry = args =>
            {
                logger.LogInformation("Gateway call failed ({Error}); retry {Attempt}", args.Outcome.Exception?.Message, args.AttemptNumber + 1);
                return default;
            },
        })
        .AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<GatewayUnavailableException>().Handle<TimeoutRejectedException>(),
            FailureRatio = 0.8,
            MinimumThroughput = 20,
            SamplingDuration = TimeSpan.FromSeconds(10),
            BreakDuration = TimeSpan.FromSeconds(2),
        })
        .AddTimeout(options.GatewayTimeout)
        .Build();

    /// <summary>The order's charge (the first one, if it was charged before); throws when the gateway cannot be used now.</summary>
    public async Task<Charge> ChargeAsync(string orderId, decimal amount, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(async ct => await gateway.ChargeAsync(orderId, amount, ct), cancellationToken);
        }
        catch (BrokenCircuitException e)
        {
            throw new GatewayUnavailableException("payment gateway unavailable (circuit open)", e);
        }
    }

    /// <summary>Refunds the order's charge once; throws when the gateway cannot be used now.</summary>
    public async Task<RefundResult> RefundAsync(string orderId, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(async ct => await gateway.RefundAsync(orderId, ct), cancellationToken);
        }
        catch (BrokenCircuitException e)
        {
            throw new GatewayUnavailableException("payment gateway unavailable (circuit open)", e);
        }
    }
}
