using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>The storage a test runs its services on: the tests that hold for both run once per backend.</summary>
public enum StorageBackend
{
    Sqlite,
    Postgres,
}

/// <summary>One database of one test: a SQLite file in the test's folder, or a fresh database
/// on the test PostgreSQL server (<see cref="PostgresTestServer"/>).</summary>
/// <param name="Location">The file's path, or the database's connection string.</param>
public sealed record TestDatabase(StorageBackend Backend, string Location)
{
    public static async Task<TestDatabase> CreateAsync(StorageBackend backend, string folder, string name) =>
        backend == StorageBackend.Sqlite
            ? new TestDatabase(backend, Path.Combine(folder, $"{name}.db"))
            : new TestDatabase(backend, await (await PostgresTestServer.GetAsync()).CreateDatabaseAsync(name));

    /// <summary>The service's configuration for this database (keys with <c>:</c>, for a host in this process).</summary>
    public IReadOnlyDictionary<string, string?> Settings => Backend == StorageBackend.Sqlite
        ? new Dictionary<string, string?> { ["Messaging:DatabasePath"] = Location }
        : new Dictionary<string, string?> { ["ConnectionStrings:Postgres"] = Location };

    /// <summary>The same, as environment variables of a service process.</summary>
    public IReadOnlyDictionary<string, string?> Environment => Settings.ToDictionary(s => s.Key.Replace(":", "__", StringComparison.Ordinal), s => s.Value);

    /// <summary>A connection of the test's own, to look at what the services wrote.</summary>
    public async Task<DbConnection> OpenAsync()
    {
        DbConnection connection = Backend == StorageBackend.Sqlite
            ? new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Location, DefaultTimeout = 30 }.ToString())
            : new NpgsqlConnection(Location);
        await connection.OpenAsync();
        return connection;
    }
}
