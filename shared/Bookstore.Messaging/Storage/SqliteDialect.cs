using System.Data.Common;

namespace Bookstore.Messaging.Storage;

/// <summary>SQLite: the common dialect is its own; batches travel as one JSON array (<c>json_each</c>).</summary>
public sealed class SqliteDialect : SqlDialect
{
    public static SqliteDialect Instance { get; } = new();

    public override string Schema(string ddl) => ddl;

    public override string Values(string parameter) => $"json_each({parameter})";

    public override object List<T>(IEnumerable<T> values) => Json(values);

    public override string Rows(string parameter, string table, params (string Name, string Type)[] columns) =>
        $"(SELECT {string.Join(", ", columns.Select(c => $"value ->> '{c.Name}' AS {c.Name}"))} FROM json_each({parameter})) AS {table}";

    public override string SkipLocked => string.Empty;

    // One writer at a time: a write transaction already has the database to itself.
    public override Task SerializeAsync(DbTransaction transaction, string work) => Task.CompletedTask;

    public override Task ShareAsync(DbTransaction transaction, string work) => Task.CompletedTask;

    public override string NowMilliseconds => "@now";

    public override string ForShare => string.Empty;

    public override string ForUpdate => string.Empty;

    public override string IndexedBy(string index) => $"INDEXED BY {index}";

    public override string Temporary(string table) => $"temp.{table}";
}
