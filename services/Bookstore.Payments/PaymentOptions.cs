namespace Bookstore.Payments;

/// <summary>The <c>Payments</c> configuration section. The same section also paces the pending-work
/// worker (<c>Payments:RetryDelay</c>, <c>MaxRetryDelay</c>, <c>MaxConcurrentCalls</c>,
/// <c>ClaimLease</c>, <c>IdlePoll</c>, <c>BatchSize</c>; see <see cref="Bookstore.Messaging.Work.PendingWorkOptions"/>).</summary>
public sealed class PaymentOptions
{
    public const string Section = "Payments";

    /// <summary>Failed gateway calls after which a charge is given up and the order fails with the
    /// reason (with the default backoff of 1, 2, 4, 8 s: about 15 s of an unavailable gateway).
    /// A refund is never given up.</summary>
    public int ChargeAttempts { get; set; } = 5;

    /// <summary>One gateway call is abandoned after this long (and tried again later).</summary>
    public TimeSpan GatewayTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
