using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Bookstore.UnitTests;

/// <summary>The writer's statement cache on a real SQLite file: each text is compiled once, and
/// what a statement returns, binds or fails with is what an uncached command gives.</summary>
public sealed class StatementCachingConnectionTests : IDisposable
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("bookstore-statements-");
    private readonly StatementCachingConnection _connection;

    public StatementCachingConnectionTests()
    {
        _connection = new StatementCachingConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_data.FullName, "cache.db"), Pooling = false }.ToString());
        _connection.Open();
        _connection.Execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)");
    }

    public void Dispose()
    {
        _connection.Dispose();
        _data.Delete(recursive: true);
    }

    [Fact]
    public async Task A_statement_run_many_times_with_different_values_is_compiled_once()
    {
        var before = _connection.Compiled;
        using (var transaction = _connection.BeginTransaction())
        {
            for (var i = 0; i < 50; i++)
            {
                await _connection.ExecuteAsync("INSERT INTO item (id, name) VALUES (@id, @name)", new { id = i, name = $"item-{i}" }, transaction);
            }

            transaction.Commit();
        }

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal($"item-{i}", await _connection.ExecuteScalarAsync<string>("SELECT name FROM item WHERE id = @id", new { id = i }));
        }

        Assert.Equal(2, _connection.Compiled - before);
        Assert.Equal(50, await _connection.ExecuteScalarAsync<long>("SELECT count(*) FROM item"));
    }

    [Fact]
    public async Task Parameters_are_bound_by_the_name_the_text_writes_whatever_its_prefix()
    {
        await _connection.ExecuteAsync("INSERT INTO item (id, name) VALUES ($id, :name)", new { id = 1, name = "dollar and colon" });

        // "@id" is also the start of "@ids": each gets its own value.
        Assert.Equal("dollar and colon|7", await _connection.ExecuteScalarAsync<string>("SELECT name || '|' || @ids FROM item WHERE id = @id", new { id = 1, ids = 7 }));
        Assert.Equal("dollar and colon|8", await _connection.ExecuteScalarAsync<string>("SELECT name || '|' || @ids FROM item WHERE id = @id", new { id = 1, ids = 8 }));

        // Written with two prefixes: refused as ambiguous, as by an uncached command.
        var ambiguous = await Assert.ThrowsAsync<InvalidOperationException>(() => _connection.ExecuteScalarAsync<long>("SELECT @v + $v", new { v = 1 }));
        Assert.Contains("multiple matching parameters", ambiguous.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_statement_that_failed_runs_again_correctly()
    {
        const string Insert = "INSERT INTO item (id, name) VALUES (@id, @name)";
        await _connection.ExecuteAsync(Insert, new { id = 1, name = "taken" });

        var refused = await Assert.ThrowsAsync<SqliteException>(() => _connection.ExecuteAsync(Insert, new { id = 2, name = "taken" }));
        Assert.Equal(19, refused.SqliteErrorCode); // SQLITE_CONSTRAINT

        await _connection.ExecuteAsync(Insert, new { id = 3, name = "free" });
        Assert.Equal(["free", "taken"], (await _connection.QueryAsync<string>("SELECT name FROM item ORDER BY name")).ToArray());
    }

    [Fact]
    public async Task The_same_query_read_while_its_first_reader_is_open_gets_its_own_statement()
    {
        await _connection.ExecuteAsync("INSERT INTO item (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
        const string Names = "SELECT name FROM item WHERE id >= @from ORDER BY id";

        var outer = new List<string>();
        var inner = new List<string>();
        foreach (var name in _connection.Query<string>(Names, new { from = 1 }, buffered: false))
        {
            outer.Add(name);
            inner.AddRange(_connection.Query<string>(Names, new { from = 3 }));
        }

        Assert.Equal(["a", "b", "c"], outer);
        Assert.Equal(["c", "c", "c"], inner);
        Assert.Equal(["a", "b", "c"], await _connection.QueryAsync<string>(Names, new { from = 0 }));
    }

    [Fact]
    public async Task A_kept_statement_runs_in_the_transaction_of_each_call_and_a_rollback_undoes_it()
    {
        const string Insert = "INSERT INTO item (id, name) VALUES (@id, @name)";
        using (var rolledBack = _connection.BeginTransaction())
        {
            await _connection.ExecuteAsync(Insert, new { id = 1, name = "undone" }, rolledBack);
            rolledBack.Rollback();
        }

        using (var committed = _connection.BeginTransaction())
        {
            await _connection.ExecuteAsync(Insert, new { id = 2, name = "kept" }, committed);
            committed.Commit();
        }

        await _connection.ExecuteAsync(Insert, new { id = 3, name = "alone" });
        Assert.Equal(["alone", "kept"], (await _connection.QueryAsync<string>("SELECT name FROM item ORDER BY name")).ToArray());
    }
}
