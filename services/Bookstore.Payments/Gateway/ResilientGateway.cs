using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Bookstore.Payments.Gateway;

/// <summary>The gateway behind timeout, retry and circuit breaker: a slow call is abandoned, a
/// transient failure retried, and a gateway that keeps failing is not hammered while it recovers.
/// Retrying a charge is safe because the gateway is idempotent per order.</summary>
public sealed class ResilientGateway(SimulatedGateway gateway, ILogger<ResilientGateway> logger)
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
        .AddTimeout(TimeSpan.FromSeconds(2))
        .Build();

    /// <summary>The charge, or null with the reason the gateway could not be used.</summary>
    public async Task<(Charge? Charge, string? Failure)> ChargeAsync(string orderId, decimal amount, CancellationToken cancellationToken)
    {
        try
        {
            return (await _pipeline.ExecuteAsync(async ct => await gateway.ChargeAsync(orderId, amount, ct), cancellationToken), null);
        }
        catch (BrokenCircuitException)
        {
            return (null, "payment gateway unavailable (circuit open)");
        }
        catch (Exception e) when (e is GatewayUnavailableException or TimeoutRejectedException)
        {
            return (null, $"payment gateway unavailable: {e.Message}");
        }
    }

    public Task RefundAsync(string orderId, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(async ct => await gateway.RefundAsync(orderId, ct), cancellationToken).AsTask();
}
