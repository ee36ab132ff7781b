using System.Data.Common;
using Dapper;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Bookstore.Messaging.Storage;

/// <summary>The service's own database: its state, its outbox and the ids of the events it has
/// processed, so that one transaction covers all three. SQLite (one file, the embedded default) or
/// PostgreSQL (<c>ConnectionStrings:Postgres</c>), chosen by configuration; the SQL is written once
/// and what differs between the two is in <see cref="Sql"/>.</summary>
/// <remarks>Every instance of a service opens the same database. On SQLite that means one host,
/// whose file locking serializes writers; on PostgreSQL instances share nothing but the server,
/// and each guarantee comes from the server itself (row locks, <c>ON CONFLICT</c>, advisory locks).</remarks>
public abstract class ServiceDatabase : IDisposable
{
    /// <summary>The tables of the messaging library, in the common dialect (see <see cref="SqlDialect.Schema"/>).</summary>
    internal const string MessagingSchema = """
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
        CREATE TABLE IF NOT EXISTS database_owner (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            service TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS relay_lease (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at INTEGER NOT NULL) WITHOUT ROWID;
        """;

    /// <summary>The backend chosen by <paramref name="options"/>: PostgreSQL when it names a
    /// connection string, else the SQLite file at <see cref="MessagingOptions.DatabasePath"/>.</summary>
    /// <param name="schema">The service's own tables, in the common dialect.</param>
    public static ServiceDatabase Open(MessagingOptions options, string schema)
    {
        ArgumentNullException.ThrowIfNull(options);
        var database = Open(options.PostgresConnectionString, options.DatabasePath, MessagingSchema + schema);
        try
        {
            database.ClaimFor(options.GroupId);
            return database;
        }
        catch
        {
            database.Dispose();
            throw;
        }
    }

    /// <summary>Records which service the database belongs to, and refuses another's: two services
    /// on one database would share an outbox, a relay lease and the ids of processed events, and
    /// each would skip the events the other had handled.</summary>
    private void ClaimFor(string service)
    {
        using var connection = OpenAsync().GetAwaiter().GetResult();
        connection.Execute("INSERT INTO database_owner (id, service) VALUES (1, @service) ON CONFLICT DO NOTHING", new { service });
        var owner = connection.ExecuteScalar<string>("SELECT service FROM database_owner WHERE id = 1");
        if (owner != service)
        {
            throw new InvalidOperationException(
                $"The {Backend} database {Location} belongs to the service '{owner}', not '{service}': every service needs a database of its own.");
        }
    }

    /// <summary>A database with <paramref name="schema"/> alone: on PostgreSQL when
    /// <paramref name="postgresConnectionString"/> is given, else in the SQLite file <paramref name="sqlitePath"/>.</summary>
    public static ServiceDatabase Open(string? postgresConnectionString, string sqlitePath, string schema) =>
        string.IsNullOrWhiteSpace(postgresConnectionString)
            ? new SqliteServiceDatabase(sqlitePath, schema)
            : new PostgresServiceDatabase(postgresConnectionString, schema);

    /// <summary><c>sqlite</c> or <c>postgresql</c>.</summary>
    public abstract string Backend { get; }

    /// <summary>Where the data is, for people: the file, or the server and database (never the password).</summary>
    public abstract string Location { get; }

    /// <summary>The SQL that differs between the backends.</summary>
    public abstract SqlDialect Sql { get; }

    public abstract Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default);

    /// <summary>Runs <paramref name="work"/> in a write transaction and commits it; the transaction
    /// rolls back if <paramref name="work"/> throws. <paramref name="work"/> may run more than once
    /// (see <see cref="PostgresServiceDatabase"/>): it must only write through the transaction, and
    /// never wait for another write (on SQLite the two may share a transaction).</summary>
    public abstract Task<T> WriteAsync<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken = default);

    public Task WriteAsync(Func<DbTransaction, Task> work, CancellationToken cancellationToken = default) =>
        WriteAsync(
            async transaction =>
            {
                await work(transaction);
                return true;
            },
            cancellationToken);

    /// <summary>Runs <paramref name="work"/>, whose pieces (messages, outcomes) may each fail
    /// without undoing the others, first with no savepoint at all (given null), since a piece seldom
    /// fails and a savepoint costs on every piece. When a piece fails, the work throws
    /// <see cref="SavepointsNeededException"/>, everything it wrote is undone, and it runs again in a
    /// new transaction with a savepoint (and the first run's failure) to put around each piece.</summary>
    internal async Task<T> WriteWithSavepointsOnFailureAsync<T>(string savepointName, Func<DbTransaction, Savepoint?, SavepointsNeededException?, Task<T>> work)
    {
        try
        {
            return await WriteAsync(transaction => work(transaction, null, null));
        }
        catch (SavepointsNeededException failure)
        {
            return await WriteAsync(async transaction =>
            {
                using var savepoint = new Savepoint(transaction, savepointName);
                return await work(transaction, savepoint, failure);
            });
        }
    }

    /// <summary>The database failed (busy, locked, unreachable, full, a deadlock), not the work in
    /// hand: worth retrying the whole transaction rather than blaming a message or an outcome.</summary>
    public static bool IsUnavailable(Exception e) => e switch
    {
        SqliteException { SqliteErrorCode: 5 or 6 or 10 or 13 or 14 } => true,
        PostgresException p => PostgresServiceDatabase.IsTransient(p.SqlState),
        NpgsqlException n => n.IsTransient,
        _ => false,
    };

    public virtual void Dispose() => GC.SuppressFinalize(this);
}
