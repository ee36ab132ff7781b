using Dapper;
using Microsoft.Data.Sqlite;

namespace Bookstore.Messaging.Storage;

/// <summary>The service's own SQLite database (WAL): its state, its outbox and the ids of the
/// events it has processed, so that one transaction covers all three.</summary>
/// <remarks>WAL with <c>synchronous=NORMAL</c> survives a process crash, the failure model here
/// (not a power cut). All instances of a service open the same file; SQLite serializes writers and
/// the busy timeout makes them wait their turn instead of failing.</remarks>
public sealed class ServiceDatabase : IDisposable
{
    private const string MessagingSchema = """
        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS outbox_parked (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            value_bytes INTEGER NOT NULL,
            error TEXT NOT NULL,
            parked_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS processed_events (
            event_id TEXT PRIMARY KEY,
            processed_at TEXT NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS processed_events_by_age ON processed_events (processed_at);
        CREATE TABLE IF NOT EXISTS relay_lease (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at INTEGER NOT NULL) WITHOUT ROWID;
        """;

    private readonly string _connectionString;

    // One writer at a time in this process: SQLite allows one anyway, and waiting here, in
    // order, beats SQLite's busy handler, which sleeps and lets later writers overtake.
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    public ServiceDatabase(string path, string schema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();

        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        connection.Execute("PRAGMA journal_mode=WAL;");
        Configure(connection);
        connection.Execute(MessagingSchema + schema);
    }

    public string Path { get; }

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        Configure(connection);
        return connection;
    }

    /// <summary>Runs <paramref name="work"/> in a write transaction (BEGIN IMMEDIATE) and commits
    /// it; the transaction rolls back if <paramref name="work"/> throws.</summary>
    public async Task<T> WriteAsync<T>(Func<SqliteTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            var result = await work(transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public Task WriteAsync(Func<SqliteTransaction, Task> work, CancellationToken cancellationToken = default) =>
        WriteAsync(
            async transaction =>
            {
                await work(transaction);
                return true;
            },
            cancellationToken);

    /// <summary>The database failed (busy, locked, I/O, full, cannot open), not the work in hand:
    /// worth retrying the whole transaction rather than blaming a message or an outcome.</summary>
    public static bool IsUnavailable(Exception e) =>
        e is SqliteException { SqliteErrorCode: 5 or 6 or 10 or 13 or 14 };

    private static void Configure(SqliteConnection connection) =>
        connection.Execute("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;");

    public void Dispose() => _writeGate.Dispose();
}
