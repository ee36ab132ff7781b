using System.Data.Common;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Bookstore.Messaging.Storage;

/// <summary>The embedded default: one SQLite file (WAL) that every instance of the service on
/// this host opens.</summary>
/// <remarks>WAL with <c>synchronous=NORMAL</c> survives a process crash, the failure model here
/// (not a power cut). SQLite serializes writers (<c>BEGIN IMMEDIATE</c>) and the busy timeout makes
/// them wait their turn instead of failing. Writes go through one connection, opened and configured
/// once; those that arrive while another commits are committed together; and the WAL is
/// checkpointed in the background rather than inside a commit.</remarks>
public sealed class SqliteServiceDatabase : ServiceDatabase
{
    private static readonly TimeSpan CheckpointInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RestartBackoff = TimeSpan.FromSeconds(10);

    private readonly string _connectionString;

    // One writer at a time in this process: SQLite allows one anyway, and waiting here, in
    // order, beats SQLite's busy handler, which sleeps and lets later writers overtake.
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    // The writer's connection, kept open between transactions (guarded by the gate) with the
    // statements it compiled: opening one and setting its PRAGMAs on every transaction cost a few
    // percent of a busy service, compiling every statement on every call about 7 %.
    private StatementCachingConnection? _writer;

    // Readers' connections kept open between callers, so that their statements stay compiled and
    // their PRAGMAs set: a few per service cover its concurrent readers (HTTP, relay, workers).
    private const int KeptReaders = 4;
    private readonly Stack<StatementCachingConnection> _readers = new();
    private readonly Lock _readersLock = new();
    private bool _closed;

    // Writes waiting for the next group commit, and whether a write is committing one now.
    private const int MaxGroup = 64;
    private readonly Queue<GroupedWrite> _queued = new();
    private readonly Lock _queueLock = new();
    private bool _writing;
    private bool _writesClosed;

    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _checkpoints;
    private long _commits;

    /// <summary>The WAL's size above which it is started over from its beginning, and the size
    /// its file is cut back to then.</summary>
    internal const long DefaultWalLimitBytes = 64L * 1024 * 1024;

    private readonly long _walLimitBytes;

    public SqliteServiceDatabase(string path, string schema)
        : this(path, schema, DefaultWalLimitBytes)
    {
    }

    internal SqliteServiceDatabase(string path, string schema, long walLimitBytes)
    {
        _walLimitBytes = walLimitBytes;
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
        _checkpoints = Task.Run(() => CheckpointAsync(_stopping.Token));
    }

    public string Path { get; }

    private long _walRestartsDeferred;

    /// <summary>WAL restarts a reader kept from finishing (each followed by a pause).</summary>
    internal long WalRestartsDeferred => Interlocked.Read(ref _walRestartsDeferred);

    /// <summary>Write transactions committed since this opened.</summary>
    internal long Commits => Interlocked.Read(ref _commits);

    public override string Backend => "sqlite";

    public override string Location => Path;

    public override SqlDialect Sql => SqliteDialect.Instance;

    /// <summary>A reader's connection: one kept open from an earlier caller, with the statements it
    /// compiled, or a new one. Disposing it gives it back.</summary>
    public override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        StatementCachingConnection? connection;
        lock (_readersLock)
        {
            _readers.TryPop(out connection);
        }

        if (connection is null)
        {
            connection = new StatementCachingConnection(_connectionString, GiveBack);
            await connection.OpenAsync(cancellationToken);
            Configure(connection);
        }

        connection.Lend();
        return connection;
    }

    private bool GiveBack(StatementCachingConnection connection)
    {
        lock (_readersLock)
        {
            if (_closed || _readers.Count >= KeptReaders)
            {
                return false;
            }

            _readers.Push(connection);
            return true;
        }
    }

    /// <summary>Runs <paramref name="work"/> in a write transaction that may be shared: writes that
    /// arrive while another commits are run together and committed once (group commit). A work that
    /// throws fails alone: the group is undone and the others run again without it (a work may run
    /// more than once). A failure of the database itself (busy, I/O, the commit) fails every work of
    /// the group, none of which is then committed.</summary>
    /// <remarks>A commit's cost is per transaction, not per row: its dirty pages go to the WAL as
    /// frames, two writes each, and a page that several writers touched goes once. Under load the
    /// HTTP placements, the consumer's batch and the relay's deletes share commits.</remarks>
    public override async Task<T> WriteAsync<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        var write = new GroupedWrite<T>(work, cancellationToken);
        bool leads;
        lock (_queueLock)
        {
            ObjectDisposedException.ThrowIf(_writesClosed, this);
            _queued.Enqueue(write);
            leads = !_writing;
            _writing = true;
            if (leads)
            {
                write.TryLead();
            }
        }

        if (!leads)
        {
            try
            {
                leads = await write.Turn.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (write.TryAbandon())
            {
                // Still queued: whoever reaches it passes over it.
                throw;
            }
            catch (OperationCanceledException)
            {
                // It leads or is being committed already: its outcome stands.
                leads = await write.Turn.Task;
            }
        }

        if (leads)
        {
            await CommitGroupAsync();
        }

        return await write.Result;
    }

    /// <summary>Run by the write at the head of the queue: commits it with those queued behind it,
    /// then hands the turn to the next write waiting, if any, so that no caller runs others' groups
    /// for long.</summary>
    private async Task CommitGroupAsync()
    {
        var group = new List<GroupedWrite>();
        lock (_queueLock)
        {
            while (group.Count < MaxGroup && _queued.TryDequeue(out var next))
            {
                // The head leads; the others are taken unless their callers stopped waiting.
                if (group.Count == 0 || next.TryTake())
                {
                    group.Add(next);
                }
            }
        }

        try
        {
            await _writeGate.WaitAsync(_stopping.Token);
            try
            {
                await RunGroupAsync(group);
            }
            finally
            {
                _writeGate.Release();
            }
        }
        catch (Exception e) when (_stopping.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
        {
            group.ForEach(w => w.Fail(new ObjectDisposedException(nameof(SqliteServiceDatabase), "The database was closed before this write committed.")));
        }
#pragma warning disable CA1031 // Whatever failed (the connection, the commit), each write of the group learns it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            group.ForEach(w => w.Fail(e));
        }
        finally
        {
            lock (_queueLock)
            {
                // The next head whose caller still waits leads; those that stopped waiting are dropped.
                while (_queued.TryPeek(out var next) && !next.TryLead())
                {
                    _queued.Dequeue();
                }

                _writing = _queued.Count > 0;
            }
        }
    }

    private async Task RunGroupAsync(List<GroupedWrite> group)
    {
        // Decided once per write: one cancelled now is neither run nor committed.
        var live = new List<GroupedWrite>(group.Count);
        foreach (var write in group)
        {
            if (write.CancellationRequested)
            {
                write.Cancel();
            }
            else
            {
                live.Add(write);
            }
        }

        if (live.Count == 0)
        {
            return;
        }

        try
        {
            if (_writer is null)
            {
                _writer = new StatementCachingConnection(_connectionString);
                await _writer.OpenAsync();
                Configure(_writer);
                // Checkpoints run beside the writers (CheckpointAsync), not in whichever commit crosses the threshold;
                // when the WAL starts over, the writer cuts its file back to the limit.
                await _writer.ExecuteAsync($"PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={_walLimitBytes};");
            }

            // No savepoint per write, since each costs on every write (SQLite copies the pages a write
            // changes under one to its statement journal). A write that throws is rarer: then the
            // group is undone, that write fails, and the others run again without it.
            while (live.Count > 0)
            {
                await using var transaction = await _writer.BeginTransactionAsync();
                var failed = -1;
                for (var i = 0; i < live.Count && failed < 0; i++)
                {
                    try
                    {
                        await live[i].RunAsync(transaction);
                    }
                    catch (Exception e) when (!IsUnavailable(e))
                    {
                        live[i].Fail(e);
                        failed = i;
                    }
                }

                if (failed < 0)
                {
                    await transaction.CommitAsync();
                    Interlocked.Increment(ref _commits);
                    break;
                }

                await transaction.RollbackAsync();
                live.RemoveAt(failed);
            }
        }
        catch
        {
            // Whatever failed, opening it included, the next transaction starts on a fresh connection.
            if (_writer is not null)
            {
                await _writer.DisposeAsync();
                _writer = null;
            }
            throw;
        }

        live.ForEach(w => w.Complete());
    }

    /// <summary>Copies the WAL's committed pages into the database file once a second after writes,
    /// without waiting for readers or writers (PASSIVE), so that no commit pays for a checkpoint;
    /// and starts the WAL over once it outgrows its limit (<see cref="RestartWalAsync"/>).</summary>
    /// <remarks>PASSIVE alone never lets a busy service's WAL start over: a writer may write from its
    /// beginning again only when every frame was copied and no reader still reads any, and under load
    /// some commit always came after the last checkpoint. Measured: after 13,000 orders the WAL
    /// files held 0.8 GB, Orders' alone 0.5 GB, and they grew without end.</remarks>
    private async Task CheckpointAsync(CancellationToken stoppingToken)
    {
        var checkpointed = 0L;
        var restartNotBefore = 0L;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(CheckpointInterval, stoppingToken);
                var commits = Interlocked.Read(ref _commits);
                if (commits == checkpointed)
                {
                    continue;
                }

                await using (var connection = await OpenAsync(stoppingToken))
                {
                    await connection.ExecuteAsync("PRAGMA wal_checkpoint(PASSIVE);");
                }

                checkpointed = commits;
                if (WalBytes() > _walLimitBytes && Environment.TickCount64 >= restartNotBefore && !stoppingToken.IsCancellationRequested)
                {
                    if (!await RestartWalAsync(stoppingToken))
                    {
                        Interlocked.Increment(ref _walRestartsDeferred);
                        // A reader older than the last frames: writers are not held again before it likely ended.
                        restartNotBefore = Environment.TickCount64 + (long)RestartBackoff.TotalMilliseconds;
                    }
                }
            }
            catch (Exception e) when (stoppingToken.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SqliteException)
            {
                // Busy or locked: the next round checkpoints what this one could not.
            }
        }
    }

    private long WalBytes()
    {
        var wal = new FileInfo(Path + "-wal");
        return wal.Exists ? wal.Length : 0;
    }

    /// <summary>Copies what the last PASSIVE round left, then waits briefly for the readers of older
    /// frames to finish (RESTART), so that the next commit writes the WAL from its beginning.
    /// This process's writers wait at the gate meanwhile: right after a PASSIVE round only a second
    /// of commits is left to copy. False when a reader kept it from finishing.</summary>
    private async Task<bool> RestartWalAsync(CancellationToken stoppingToken)
    {
        await _writeGate.WaitAsync(stoppingToken);
        try
        {
            var connection = (StatementCachingConnection)await OpenAsync(stoppingToken);
            long busy;
            try
            {
                // A long reader (a report, a replay) makes this round give up rather than hold the writers.
                await connection.ExecuteAsync("PRAGMA busy_timeout=200;");
                // SQLite answers busy in the row (busy, log frames, checkpointed frames), not as an error.
                busy = await connection.ExecuteScalarAsync<long>("PRAGMA wal_checkpoint(RESTART);");
                Configure(connection);
            }
            catch
            {
                // Its busy timeout may still be the short one: never lend it again.
                connection.Discard();
                throw;
            }

            // Given back only once configured as every lent connection is; never discarded after that.
            await connection.DisposeAsync();
            return busy == 0;
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
        lock (_queueLock)
        {
            _writesClosed = true;
        }

        // Writes still queued fail at the gate, one group after the other.
        _stopping.Cancel();
        try
        {
            _checkpoints.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // Stopped: nothing of it is needed any more.
        }

        if (_writeGate.Wait(TimeSpan.FromSeconds(30)))
        {
            _writer?.Dispose();
            _writer = null;
            _writeGate.Dispose();
        }

        List<StatementCachingConnection> readers;
        lock (_readersLock)
        {
            _closed = true;
            readers = [.. _readers];
            _readers.Clear();
        }

        readers.ForEach(reader => reader.Discard());

        _stopping.Dispose();
        base.Dispose();
    }
}
