using System.Data.Common;

namespace Bookstore.Messaging.Storage;

/// <summary>A write waiting for a group commit (<see cref="SqliteServiceDatabase.WriteAsync{T}"/>):
/// its work, and how its caller learns that it leads the next group or what became of the write.</summary>
internal abstract class GroupedWrite(CancellationToken cancellationToken)
{
    /// <summary>True when this write is the next to commit a group, with whatever queued behind it;
    /// false when a group committed it (or failed it) meanwhile.</summary>
    public TaskCompletionSource<bool> Turn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool Cancelled => cancellationToken.IsCancellationRequested;

    public void Lead() => Turn.TrySetResult(true);

    public abstract Task RunAsync(DbTransaction transaction);

    /// <summary>Committed: the caller gets the work's result.</summary>
    public abstract void Complete();

    public abstract void Fail(Exception error);

    public abstract void Cancel();

    protected void Settled() => Turn.TrySetResult(false);

    protected CancellationToken CancellationToken => cancellationToken;
}

internal sealed class GroupedWrite<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken) : GroupedWrite(cancellationToken)
{
    private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private T? _value;
    private bool _failed;

    public Task<T> Result => _result.Task;

    public override async Task RunAsync(DbTransaction transaction) => _value = await work(transaction);

    public override void Complete()
    {
        if (!_failed)
        {
            _result.TrySetResult(_value!);
        }

        Settled();
    }

    public override void Fail(Exception error)
    {
        _failed = true;
        _result.TrySetException(error);
        Settled();
    }

    public override void Cancel()
    {
        _failed = true;
        _result.TrySetCanceled(CancellationToken);
        Settled();
    }
}
