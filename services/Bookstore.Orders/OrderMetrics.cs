using System.Diagnostics.Metrics;

namespace Bookstore.Orders;

/// <summary>Orders placed and decided, and how long a decision took from placement (meter
/// <c>Bookstore.Orders</c>). Recorded once the transaction that placed or decided the order committed.</summary>
public sealed class OrderMetrics
{
    public const string MeterName = "Bookstore.Orders";

    private readonly Counter<long> _placed;
    private readonly Counter<long> _decided;
    private readonly Histogram<double> _duration;

    public OrderMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _placed = meter.CreateCounter<long>("bookstore.orders.placed", "{order}", "Orders accepted (HTTP 202, first time).");
        _decided = meter.CreateCounter<long>("bookstore.orders.decided", "{order}", "Orders that reached a terminal state, by outcome (confirmed, cancelled) and the step that cancelled them.");
        _duration = meter.CreateHistogram<double>(
            "bookstore.orders.duration",
            "s",
            "From placement to the terminal state (the time between the OrderPlaced and OrderConfirmed/OrderCancelled events).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] });
    }

    public void Placed() => _placed.Add(1);

    /// <param name="step">What cancelled it (stock rejected, payment failed, timeout); null when confirmed.</param>
    public void Decided(string outcome, string? step, TimeSpan? sincePlaced, int count = 1)
    {
        var outcomeTag = new KeyValuePair<string, object?>("bookstore.order.outcome", outcome);
        var stepTag = new KeyValuePair<string, object?>("bookstore.order.cancelled_by", step ?? "");
        _decided.Add(count, outcomeTag, stepTag);
        if (sincePlaced is { } duration)
        {
            _duration.Record(duration.TotalSeconds, outcomeTag);
        }
    }
}
