using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using Npgsql;

namespace Bookstore.Messaging.Storage;

/// <summary>The service's database on a PostgreSQL server, shared by instances on any host.</summary>
/// <remarks>
/// <para>Transactions are READ COMMITTED. The service's SQL was written for SQLite's single writer,
/// where a transaction that checks for a row and then inserts it cannot race another; here two can
/// both pass the check, and the second then fails on the unique key (or the server picks a deadlock
/// victim). <see cref="WriteAsync{T}"/> runs such a transaction again, and the second run sees the
/// first's row: the outcome SQLite would have given.</para>
/// <para>Statements are prepared automatically after their second use (<c>Max Auto Prepare</c>),
/// so the hot statements are parsed and planned once per connection.</para>
/// </remarks>
public sealed class PostgresServiceDatabase : ServiceDatabase
{
    private const int MaxAttempts = 5;

    // Serializes schema creation among instances starting together: CREATE TABLE IF NOT EXISTS
    // is not safe against a concurrent twin.
    private const long SchemaLockKey = 0x626f6f6b73746f72;

    private readonly NpgsqlDataSource _dataSource;

    public PostgresServiceDatabase(string connectionString, string schema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            settings.MaxAutoPrepare = 64;
            settings.AutoPrepareMinUsages = 2;
        }

        if (!given.ContainsKey("Maximum Pool Size") && !given.ContainsKey("MaxPoolSize") && !given.ContainsKey("Max Pool Size"))
        {
            // Instances × services share the server's max_connections.
            settings.MaxPoolSize = 30;
        }

        settings.ApplicationName ??= "bookstore";
        Location = $"{settings.Host}:{settings.Port}/{settings.Database}";
        _dataSource = builder.Build();

        ApplySchema(Sql.Schema(schema));
    }

    /// <summary>Runs the schema once per version of it: <c>CREATE INDEX IF NOT EXISTS</c> locks its
    /// table even when the index is there, so an instance starting up would stall the others' writes.</summary>
    private void ApplySchema(string ddl)
    {
        var version = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(ddl)));
        using var connection = _dataSource.OpenConnection();
        if (connection.ExecuteScalar<bool>("SELECT to_regclass('schema_applied') IS NOT NULL")
            && connection.ExecuteScalar<bool>("SELECT EXISTS (SELECT 1 FROM schema_applied WHERE version = @version)", new { version }))
        {
            return;
        }

        using var transaction = connection.BeginTransaction();
        connection.Execute("SELECT pg_advisory_xact_lock(@key)", new { key = SchemaLockKey }, transaction);
        connection.Execute(ddl, transaction: transaction);
        connection.Execute(
            """
            CREATE TABLE IF NOT EXISTS schema_applied (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
            INSERT INTO schema_applied (version) VALUES (@version) ON CONFLICT DO NOTHING;
            """,
            new { version },
            transaction);
        transaction.Commit();
    }

    public override string Backend => "postgresql";

    public override string Location { get; }

    public override SqlDialect Sql => PostgresDialect.Instance;

    public override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default) =>
        await _dataSource.OpenConnectionAsync(cancellationToken);

    public override async Task<T> WriteAsync<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                var result = await work(transaction);
                await transaction.CommitAsync(cancellationToken);
                return result;
            }
            catch (PostgresException e) when (attempt < MaxAttempts && IsRaceLost(e.SqlState))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 10 * attempt)), cancellationToken);
            }
        }
    }

    /// <summary>Errors that a run of the same transaction after the other committed does not repeat.</summary>
    private static bool IsRaceLost(string sqlState) => sqlState is
        PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected;

    /// <summary>The server, not the statement: a lost race, a restart, no connection slots, no disk.</summary>
    internal static bool IsTransient(string sqlState) =>
        sqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
            or PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown
            or PostgresErrorCodes.CannotConnectNow or PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.DiskFull
            or PostgresErrorCodes.InsufficientResources or PostgresErrorCodes.OutOfMemory
        || sqlState.StartsWith("08", StringComparison.Ordinal);

    public override void Dispose()
    {
        _dataSource.Dispose();
        base.Dispose();
    }
}
