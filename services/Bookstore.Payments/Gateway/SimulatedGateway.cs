using Bookstore.Contracts;
using Dapper;
using System.Data.Common;
using System.Diagnostics;
using Bookstore.Messaging.Storage;

namespace Bookstore.Payments.Gateway;

/// <summary>What can be changed at run time (<c>PUT /admin/gateway</c>), e.g. to make it fail.</summary>
public sealed record GatewaySettings(double FailureRate = 0, int LatencyMs = 0)
{
    public bool IsValid => FailureRate is >= 0 and <= 1 && LatencyMs is >= 0 and <= 10_000;
}

public sealed record Charge(string ChargeId, string OrderId, decimal Amount, bool Refunded);

public enum RefundResult
{
    Refunded,
    AlreadyRefunded,
    NoCharge,
}

/// <summary>The gateway answered that it cannot take the request now: worth retrying.</summary>
public sealed class GatewayUnavailableException(string message) : Exception(message)
{
    public GatewayUnavailableException()
        : this("The payment gateway is unavailable.")
    {
    }

    public GatewayUnavailableException(string message, Exception innerException)
        : this(message + " " + innerException?.Message)
    {
    }
}

/// <summary>A stand-in for a card processor, with configurable latency and failure rate. Like a
/// real one, it is idempotent per order: it keeps a ledger keyed by order id (its own database,
/// not the Payment Service's), so a charge retried after a crash, or by another instance, returns
/// the first charge instead of charging twice, and a refund is applied once (a repeat, or a refund
/// without a charge, changes nothing). Its settings live beside the ledger, so every instance of
/// the Payment Service, on any host, talks to the same gateway.</summary>
public sealed class SimulatedGateway
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS ledger (
            order_id TEXT PRIMARY KEY,
            charge_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL,
            refunded INTEGER NOT NULL DEFAULT 0,
            charged_at TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS gateway_settings (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            failure_rate DOUBLE PRECISION NOT NULL,
            latency_ms INTEGER NOT NULL);
        """;

    // A change made through another instance reaches this one within this time.
    private static readonly TimeSpan SettingsRefresh = TimeSpan.FromSeconds(1);

    private readonly ServiceDatabase _ledger;
    private CachedSettings? _cached;

    /// <param name="configured">Written to the ledger's settings at start when given; otherwise
    /// the settings stay as stored (defaults for a new ledger).</param>
    public SimulatedGateway(ServiceDatabase ledger, GatewaySettings? configured)
    {
        _ledger = ledger;
        using var connection = ledger.OpenAsync().GetAwaiter().GetResult();
        connection.Execute(
            configured is null
                ? "INSERT INTO gateway_settings (id, failure_rate, latency_ms) VALUES (1, 0, 0) ON CONFLICT DO NOTHING"
                : "INSERT INTO gateway_settings (id, failure_rate, latency_ms) VALUES (1, @FailureRate, @LatencyMs) ON CONFLICT (id) DO UPDATE SET failure_rate = excluded.failure_rate, latency_ms = excluded.latency_ms",
            configured);
    }

    /// <summary>Where the ledger is, for the health report and people.</summary>
    public string Location => $"{_ledger.Backend}: {_ledger.Location}";

    public async Task<GatewaySettings> SettingsAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _cached) is { } cached && Stopwatch.GetElapsedTime(cached.ReadAt) < SettingsRefresh)
        {
            return cached.Settings;
        }

        var startedAt = Stopwatch.GetTimestamp();
        await using var connection = await _ledger.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleAsync<(double FailureRate, long LatencyMs)>("SELECT failure_rate, latency_ms FROM gateway_settings WHERE id = 1");
        var read = new CachedSettings(new GatewaySettings(row.FailureRate, (int)row.LatencyMs), startedAt);
        // A change made here while this read was under way is newer than what it read: it stays.
        while (true)
        {
            var current = Volatile.Read(ref _cached);
            if (current is not null && current.ReadAt >= startedAt)
            {
                return current.Settings;
            }

            if (Interlocked.CompareExchange(ref _cached, read, current) == current)
            {
                return read.Settings;
            }
        }
    }

    public async Task UpdateSettingsAsync(GatewaySettings settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        await using var connection = await _ledger.OpenAsync(cancellationToken);
        await connection.ExecuteAsync("UPDATE gateway_settings SET failure_rate = @FailureRate, latency_ms = @LatencyMs WHERE id = 1", settings);
        Volatile.Write(ref _cached, new CachedSettings(settings, Stopwatch.GetTimestamp()));
    }

    public async Task<Charge> ChargeAsync(string orderId, decimal amount, CancellationToken cancellationToken)
    {
        await using var connection = await _ledger.OpenAsync(cancellationToken);
        if (await FindAsync(connection, orderId) is { } earlier)
        {
            return earlier;
        }

        await SimulateAsync(cancellationToken);
        var charge = new Charge($"ch_{Guid.CreateVersion7():N}", orderId, amount, false);
        await connection.ExecuteAsync(
            "INSERT INTO ledger (order_id, charge_id, amount_cents, charged_at) VALUES (@OrderId, @ChargeId, @cents, @at) ON CONFLICT DO NOTHING",
            new { charge.OrderId, charge.ChargeId, cents = Money.ToCents(amount), at = DateTimeOffset.UtcNow.ToString("O") });
        return (await FindAsync(connection, orderId))!;
    }

    public async Task<RefundResult> RefundAsync(string orderId, CancellationToken cancellationToken)
    {
        await using var connection = await _ledger.OpenAsync(cancellationToken);
        switch (await FindAsync(connection, orderId))
        {
            case null:
                return RefundResult.NoCharge;
            case { Refunded: true }:
                return RefundResult.AlreadyRefunded;
        }

        await SimulateAsync(cancellationToken);
        var applied = await connection.ExecuteAsync("UPDATE ledger SET refunded = 1 WHERE order_id = @orderId AND refunded = 0", new { orderId });
        return applied == 1 ? RefundResult.Refunded : RefundResult.AlreadyRefunded;
    }

    public async Task<List<Charge>> LedgerAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _ledger.OpenAsync(cancellationToken);
        return [.. (await connection.QueryAsync<LedgerRow>(LedgerQuery + " ORDER BY charged_at")).Select(r => r.ToCharge())];
    }

    private async Task SimulateAsync(CancellationToken cancellationToken)
    {
        var settings = await SettingsAsync(cancellationToken);
        if (settings.LatencyMs > 0)
        {
            await Task.Delay(settings.LatencyMs, cancellationToken);
        }

        if (settings.FailureRate > 0 && Random.Shared.NextDouble() < settings.FailureRate)
        {
            throw new GatewayUnavailableException();
        }
    }

    private const string LedgerQuery = "SELECT charge_id AS ChargeId, order_id AS OrderId, amount_cents AS Cents, refunded AS Refunded FROM ledger";

    private static async Task<Charge?> FindAsync(DbConnection connection, string orderId) =>
        (await connection.QuerySingleOrDefaultAsync<LedgerRow>(LedgerQuery + " WHERE order_id = @orderId", new { orderId }))?.ToCharge();

    private sealed record CachedSettings(GatewaySettings Settings, long ReadAt);

    private sealed record LedgerRow(string ChargeId, string OrderId, long Cents, long Refunded)
    {
        public Charge ToCharge() => new(ChargeId, OrderId, Money.FromCents(Cents), Refunded != 0);
    }
}
