using Bookstore.Contracts;
using Dapper;
using Microsoft.Data.Sqlite;

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
/// not the Payment Service's), so a charge retried after a crash returns the first charge instead
/// of charging twice, and a refund is applied once (a repeat, or a refund without a charge, changes nothing).</summary>
public sealed class SimulatedGateway
{
    private readonly string _connectionString;
    private volatile GatewaySettings _settings;

    public SimulatedGateway(string ledgerPath, GatewaySettings settings)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(ledgerPath))!);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = ledgerPath, DefaultTimeout = 30 }.ToString();
        _settings = settings;
        using var connection = Open();
        connection.Execute("""
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS ledger (
                order_id TEXT PRIMARY KEY,
                charge_id TEXT NOT NULL,
                amount_cents INTEGER NOT NULL,
                refunded INTEGER NOT NULL DEFAULT 0,
                charged_at TEXT NOT NULL) WITHOUT ROWID;
            """);
    }

    public GatewaySettings Settings
    {
        get => _settings;
        set => _settings = value;
    }

    public async Task<Charge> ChargeAsync(string orderId, decimal amount, CancellationToken cancellationToken)
    {
        await using var connection = Open();
        if (await FindAsync(connection, orderId) is { } earlier)
        {
            return earlier;
        }

        await SimulateAsync(cancellationToken);
        var charge = new Charge($"ch_{Guid.CreateVersion7():N}", orderId, amount, false);
        await connection.ExecuteAsync(
            "INSERT OR IGNORE INTO ledger (order_id, charge_id, amount_cents, charged_at) VALUES (@OrderId, @ChargeId, @cents, @at)",
            new { charge.OrderId, charge.ChargeId, cents = Money.ToCents(amount), at = DateTimeOffset.UtcNow.ToString("O") });
        return (await FindAsync(connection, orderId))!;
    }

    public async Task<RefundResult> RefundAsync(string orderId, CancellationToken cancellationToken)
    {
        await using var connection = Open();
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

    public async Task<List<Charge>> LedgerAsync()
    {
        await using var connection = Open();
        return [.. (await connection.QueryAsync<LedgerRow>(LedgerQuery)).Select(r => r.ToCharge())];
    }

    private async Task SimulateAsync(CancellationToken cancellationToken)
    {
        var settings = _settings;
        if (settings.LatencyMs > 0)
        {
            await Task.Delay(settings.LatencyMs, cancellationToken);
        }

        if (settings.FailureRate > 0 && Random.Shared.NextDouble() < settings.FailureRate)
        {
            throw new GatewayUnavailableException();
        }
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        // Like the service's own database: durable across a process crash, no fsync per charge.
        connection.Execute("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;");
        return connection;
    }

    private const string LedgerQuery = "SELECT charge_id AS ChargeId, order_id AS OrderId, amount_cents AS Cents, refunded AS Refunded FROM ledger";

    private static async Task<Charge?> FindAsync(SqliteConnection connection, string orderId) =>
        (await connection.QuerySingleOrDefaultAsync<LedgerRow>(LedgerQuery + " WHERE order_id = @orderId", new { orderId }))?.ToCharge();

    private sealed record LedgerRow(string ChargeId, string OrderId, long Cents, long Refunded)
    {
        public Charge ToCharge() => new(ChargeId, OrderId, Money.FromCents(Cents), Refunded != 0);
    }
}
