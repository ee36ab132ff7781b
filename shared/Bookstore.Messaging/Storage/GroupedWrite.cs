using System.Data.Common;

namespace Bookstore.Messaging.Storage;

/// <summary>A write waiting for a group commit (<see cref="SqliteServiceDatabase.WriteAsync{T}"/>):
/// its work, and how its caller learns that it leads the next group or what became of the write.</summary>
internal abstract class GroupedWrite(CancellationToken cancellationToken)
{
    private const int Queued = 0;
    private const int Leading = 1;
    private const int Taken = 2;
    private const int Abandoned = 3;

    // The work runs in its caller's context (its trace, its cause), whoever leads the group.
    private readonly ExecutionContext? _context = ExecutionContext.Capture();
    private int _state = Queued;

    /// <summary>True when this write is to commit the next group, with whatever queued behind it;
    /// false once a group committed it, failed it or passed over it.</summary>
    public TaskCompletionSource<bool> Turn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool CancellationRequested => cancellationToken.IsCancellationRequested;

    protected CancellationToken CancellationToken => cancellationToken;

    /// <summary>Makes it the head that commits the next group; false when its caller stopped waiting.</summary>
    public bool TryLead()
    {
        if (Interlocked.CompareExchange(ref _state, Leading, Queued) != Queued)
        {
            return false;
        }

        Turn.TrySetResult(true);
        return true;
    }

    /// <summary>Takes it into the group being formed; false when its caller stopped waiting.</summary>
    public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued;

    /// <summary>The caller stops waiting; false when the write leads or was taken already, and
    /// then its outcome stands.</summary>
    public bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Queued) == Queued;

    public Task RunAsync(DbTransaction transaction)
    {
        if (_context is null)
        {
            return RunInContextAsync(transaction);
        }

        Task? running = null;
        ExecutionContext.Run(_context, _ => running = RunInContextAsync(transaction), null);
        return running!;
    }

    protected abstract Task RunInContextAsync(DbTransaction transaction);

    /// <summary>Committed: the caller gets the work's result (unless the work itself failed).</summary>
    public abstract void Complete();

    public abstract void Fail(Exception error);

    /// <summary>Cancelled before it ran: nothing of it was written.</summary>
    public abstract void Cancel();

    protected void Settled() => Turn.TrySetResult(false);
}

internal sealed class GroupedWrite<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken) : GroupedWrite(cancellationToken)
{
    private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private T? _value;

    public Task<T> Result => _result.Task;

    protected override async Task RunInContextAsync(DbTransaction transaction) => _value = await work(transaction);

    // A write that failed or was cancelled keeps that outcome: its result is set already.
    public override void Complete()
    {
        _result.TrySetResult(_value!);
        Settled();
    }

    public override void Fail(Exception error)
    {
        _result.TrySetException(error);
        Settled();
    }

    public override void Cancel()
    {
        _result.TrySetCanceled(CancellationToken);
        Settled();
    }
}
