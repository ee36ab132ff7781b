using System.Data.Common;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Bookstore.Messaging.Storage;

/// <summary>The embedded default: one SQLite file (WAL) that every instance of the service on
/// this host opens.</summary>
/// <remarks>WAL with <c>synchronous=NORMAL</c> survives a process crash, the failure model here
/// (not a power cut). SQLite serializes writers (<c>BEGIN IMMEDIATE</c>) and the busy timeout makes
/// them wait their turn instead of failing.</remarks>
public sealed class SqliteServiceDatabase : ServiceDatabase
{
    private readonly string _connectionString;

    // One writer at a time in this process: SQLite allows one anyway, and waiting here, in
    // order, beats SQLite's busy handler, which sleeps and lets later writers overtake.
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    public SqliteServiceDatabase(string path, string schema)
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
        connection.Execute(Sql.Schema(schema));
    }

    public string Path { get; }

    public override string Backend => "sqlite";

    public override string Location => Path;

    public override SqlDialect Sql => SqliteDialect.Instance;

    public override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        Configure(connection);
        return connection;
    }

    public override async Task<T> WriteAsync<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var result = await work(transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private static void Configure(SqliteConnection connection) =>
        connection.Execute("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;");

    public override void Dispose()
    {
        _writeGate.Dispose();
        base.Dispose();
    }
}
