using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Bookstore.IntegrationTests.Fixture;
using Npgsql;

namespace Bookstore.IntegrationTests;

/// <summary>The PostgreSQL the tests run on: a database per test, reached over TCP with a password.
/// Needs no Kafka, so it is not in the Kafka collection.</summary>
public sealed class PostgresServerTests
{
    [Fact]
    public async Task Each_test_database_is_its_own_reached_over_tcp_with_the_password()
    {
        var server = await PostgresTestServer.GetAsync();
        var first = await server.CreateDatabaseAsync("separate-a");
        var second = await server.CreateDatabaseAsync("separate-b");

        await ExecuteAsync(first, "CREATE TABLE marker (id int PRIMARY KEY); INSERT INTO marker VALUES (1)");
        Assert.Equal(1L, await ScalarAsync(first, "SELECT count(*) FROM marker"));
        Assert.Null(await ScalarAsync(second, "SELECT to_regclass('marker')::text"));
        Assert.NotEqual(await ScalarAsync(first, "SELECT current_database()"), await ScalarAsync(second, "SELECT current_database()"));

        // A TCP session has a server address; a Unix-socket one has none.
        Assert.NotNull(await ScalarAsync(first, "SELECT inet_server_addr()::text"));
        var builder = new NpgsqlConnectionStringBuilder(first);
        Assert.False(builder.Host!.StartsWith('/'), $"{builder.Host} is a host, not a socket folder");
        Assert.False(string.IsNullOrEmpty(builder.Password));

        builder.Password = "not-" + builder.Password;
        var refused = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync(builder.ConnectionString, "SELECT 1"));
        Assert.Equal(PostgresErrorCodes.InvalidPassword, refused.SqlState);
    }

    [Fact]
    public void Test_database_names_carry_the_run_and_fit_postgres_identifiers()
    {
        var name = PostgresTestServer.DatabaseName("261126205946_829016", 12, "Saga: SIGKILL and restart of every service, on PostgreSQL");

        Assert.StartsWith("test_261126205946_829016_12_saga__sigkill_", name, StringComparison.Ordinal);
        Assert.Equal(63, System.Text.Encoding.UTF8.GetByteCount(name));
        Assert.Matches("^[a-z0-9_-]+$", name);
    }

    [LocalPostgresFact]
    public async Task The_local_server_listens_on_loopback_only_and_has_no_socket_file()
    {
        var server = await PostgresTestServer.GetAsync();
        var database = await server.CreateDatabaseAsync("listening");

        Assert.Equal("127.0.0.1", await ScalarAsync(database, "SHOW listen_addresses"));
        Assert.Equal(string.Empty, await ScalarAsync(database, "SHOW unix_socket_directories"));
        // The services compare ISO-8601 timestamps as text: byte order, not a locale's.
        Assert.Equal("C", await ScalarAsync(database, "SELECT datcollate FROM pg_database WHERE datname = current_database()"));

        var port = new NpgsqlConnectionStringBuilder(database).Port;
        foreach (var address in ExternalAddresses())
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var error = await Assert.ThrowsAsync<SocketException>(async () => await socket.ConnectAsync(new IPEndPoint(address, port)));
            Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
        }
    }

    /// <summary>This machine's addresses other than loopback (none in a bare sandbox: then the
    /// settings above are the proof).</summary>
    private static IEnumerable<IPAddress> ExternalAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .Where(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }
}

/// <summary>A test of how this checkout's own server is configured: it runs where the tests use
/// that server (always in CI without Docker) and says why it is skipped elsewhere.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class LocalPostgresFactAttribute : FactAttribute
{
    public LocalPostgresFactAttribute()
    {
        if (PostgresTestServer.CurrentMode != TestDatabaseMode.Local)
        {
            Skip = $"checks the local server's settings; this run uses a {PostgresTestServer.CurrentMode} PostgreSQL";
        }
    }
}
