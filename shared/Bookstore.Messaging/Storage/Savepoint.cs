using System.Data.Common;

namespace Bookstore.Messaging.Storage;

/// <summary>A reusable savepoint inside a batch's transaction, its three statements prepared once:
/// one piece of work (a message, a recorded outcome) that fails undoes only its own writes, at a
/// cost of microseconds instead of a statement compilation each time.</summary>
/// <remarks>Opened only once a piece failed (<see cref="ServiceDatabase.WriteWithSavepointsOnFailureAsync{T}"/>):
/// under a savepoint SQLite copies every page a piece changes to a statement journal first, so
/// that it can put them back, which measured as most of a busy service's file writes.</remarks>
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

/// <summary>A piece of work failed in a transaction run without savepoints: the transaction is
/// undone as a whole and run again with a savepoint per piece, so that only the failing piece is
/// undone (<see cref="ServiceDatabase.WriteWithSavepointsOnFailureAsync{T}"/>).</summary>
internal sealed class SavepointsNeededException(Exception failure, string? failedPiece = null)
    : Exception("A piece of work failed in a transaction without savepoints; it is run again with them.", failure)
{
    /// <summary>Which piece failed (an event's id), when one can be named: it has used one attempt.</summary>
    public string? FailedPiece { get; } = failedPiece;

    public Exception Failure => InnerException!;
}
