using System.Data.Common;
using System.Text.Json;

namespace Bookstore.Messaging.Storage;

/// <summary>What the SQL of the suite says differently on SQLite and on PostgreSQL; everything
/// else (<c>ON CONFLICT</c>, <c>RETURNING</c>, <c>FILTER</c>, savepoints) is written once for both.</summary>
/// <remarks>Schemas are written in the common dialect: <c>INTEGER</c> (a 64-bit integer, as SQLite
/// has it), <c>TEXT</c> (timestamps as ISO-8601 UTC text, which sorts in time order), <c>INTEGER
/// PRIMARY KEY AUTOINCREMENT</c> for a sequence, and <c>WITHOUT ROWID</c> where SQLite benefits.</remarks>
public abstract class SqlDialect
{
    /// <summary>The schema as this backend takes it.</summary>
    public abstract string Schema(string ddl);

    /// <summary>A set of values as a table with one column, <c>value</c>, bound to
    /// <paramref name="parameter"/> whose value comes from <see cref="List{T}"/>: a batch in one statement.</summary>
    public abstract string Values(string parameter);

    /// <summary>The parameter value for <see cref="Values"/>.</summary>
    public abstract object List<T>(IEnumerable<T> values);

    /// <summary>Rows as a table named <paramref name="table"/> with <paramref name="columns"/> (each
    /// <c>TEXT</c> or <c>INTEGER</c>), bound to <paramref name="parameter"/> whose value comes from
    /// <see cref="Objects{T}"/>: many rows written with one statement.</summary>
    public abstract string Rows(string parameter, string table, params (string Name, string Type)[] columns);

    /// <summary>The parameter value for <see cref="Rows"/>: one JSON object per row, its properties
    /// named as the columns.</summary>
    public static object Objects<T>(IEnumerable<T> rows) => Json(rows);

    /// <summary>Appended to a <c>SELECT</c> that picks rows to claim: rows another transaction is
    /// claiming are passed over instead of waited for (and, on PostgreSQL, not claimed twice).</summary>
    public abstract string SkipLocked { get; }

    /// <summary>Makes <paramref name="transaction"/> the only one doing <paramref name="work"/>
    /// until it ends (a fold, a prune): SQLite has one writer anyway; PostgreSQL takes an advisory lock.</summary>
    public abstract Task SerializeAsync(DbTransaction transaction, string work);

    /// <summary>Lets <paramref name="transaction"/> do <paramref name="work"/> beside others that
    /// share it, but never while one holds it alone through <see cref="SerializeAsync"/> (recording
    /// facts beside each other, never during a fold).</summary>
    public abstract Task ShareAsync(DbTransaction transaction, string work);

    /// <summary>The current time in Unix milliseconds as the database sees it, for leases and
    /// claims that instances on several hosts compare: the server's clock on PostgreSQL, so that
    /// no host's skew shortens another's lease; on SQLite, one host, the parameter <c>@now</c>.</summary>
    public abstract string NowMilliseconds { get; }

    /// <summary>Appended to a <c>SELECT</c> whose rows must not change before the transaction ends.</summary>
    public abstract string ForShare { get; }

    /// <summary>Appended to a <c>SELECT</c> of rows the transaction is about to change, on what it read.</summary>
    public abstract string ForUpdate { get; }

    /// <summary>Names the index a query must use, where the planner has no statistics to pick it (SQLite).</summary>
    public abstract string IndexedBy(string index);

    /// <summary>The schema-qualified name of a temporary table of this connection.</summary>
    public abstract string Temporary(string table);

    /// <summary>The dialect of the database <paramref name="transaction"/> belongs to.</summary>
    public static SqlDialect Of(DbTransaction transaction) => Of(transaction?.Connection ?? throw new ArgumentException("The transaction has ended.", nameof(transaction)));

    public static SqlDialect Of(DbConnection connection) =>
        connection is Npgsql.NpgsqlConnection ? PostgresDialect.Instance : SqliteDialect.Instance;

    internal static string Json<T>(IEnumerable<T> values) => JsonSerializer.Serialize(values);
}
