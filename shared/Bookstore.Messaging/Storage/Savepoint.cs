using System.Data.Common;

namespace Bookstore.Messaging.Storage;

/// <summary>A reusable savepoint inside a batch's transaction, its three statements prepared once:
/// one piece of work (a message, a recorded outcome) that fails undoes only its own writes, at a
/// cost of microseconds instead of a statement compilation each time.</summary>
internal sealed class Savepoint : IDisposable
{
    private readonly DbCommand _begin;
    private readonly DbCommand _release;
    private readonly DbCommand _rollback;

    public Savepoint(DbTransaction transaction, string name)
    {
        _begin = Prepared(transaction, $"SAVEPOINT {name}");
        _release = Prepared(transaction, $"RELEASE {name}");
        _rollback = Prepared(transaction, $"ROLLBACK TO {name}");
    }

    public void Begin() => _begin.ExecuteNonQuery();

    public void Release() => _release.ExecuteNonQuery();

    /// <summary>Undoes what was written since <see cref="Begin"/> and ends the savepoint.</summary>
    public void Undo()
    {
        _rollback.ExecuteNonQuery();
        _release.ExecuteNonQuery();
    }

    public void Dispose()
    {
        _begin.Dispose();
        _release.Dispose();
        _rollback.Dispose();
    }

    private static DbCommand Prepared(DbTransaction transaction, string sql)
    {
        var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.Prepare();
        return command;
    }
}
