using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Data.Sqlite;

namespace Bookstore.Messaging.Storage;

/// <summary>A SQLite connection that compiles each distinct statement once and keeps it for the
/// connection's life: the commands it creates (Dapper's included) run a kept
/// <see cref="SqliteCommand"/> for their text.</summary>
/// <remarks>Microsoft.Data.Sqlite keeps a compiled statement only as long as the command object
/// that compiled it, and Dapper creates a command per call, so every call parsed and planned its
/// SQL again: about 7 % of a busy service's CPU. Used by one caller at a time (the writer, behind
/// its gate); a text in use twice at once gets a second command, which is dropped after use.</remarks>
internal sealed class StatementCachingConnection(string connectionString, Func<StatementCachingConnection, bool>? giveBack = null) : SqliteConnection(connectionString)
{
    // The suite's SQL is a fixed set of texts; the bound stops a caller that inlines values from
    // growing it without end (such texts are then compiled per call, as before).
    private const int Capacity = 256;

    private readonly Dictionary<string, KeptCommand> _idle = new(StringComparer.Ordinal);

    // Kept commands out with callers (running, or a reader open on them).
    private int _out;

    // Lent by a pool (giveBack is its way back): set while a borrower holds it.
    private bool _lent;

    /// <summary>Statements compiled on this connection, for tests.</summary>
    internal int Compiled { get; private set; }

    /// <summary>Handed to a borrower; its Dispose gives it back to the pool instead of closing it.</summary>
    internal void Lend() => _lent = true;

    /// <summary>Closes it for good, pool or not.</summary>
    internal void Discard()
    {
        _lent = false;
        giveBack = null;
        Dispose();
    }

    protected override DbCommand CreateDbCommand() => new CachedStatementCommand(this, Transaction);

    private KeptCommand Rent(string sql)
    {
        _out++;
        if (_idle.Remove(sql, out var kept))
        {
            return kept;
        }

        Compiled++;
        return new KeptCommand { Connection = this, CommandText = sql };
    }

    private void Return(KeptCommand command)
    {
        _out--;
        if (command.Reading || _idle.Count >= Capacity || !_idle.TryAdd(command.CommandText, command))
        {
            command.Dispose();
            return;
        }

        command.Parameters.Clear();
        command.Transaction = null;
    }

    /// <summary>A command whose statement failed: compiled afresh next time, in case it was left mid-step.</summary>
    private void Drop(KeptCommand command)
    {
        _out--;
        command.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && giveBack is not null)
        {
            if (!_lent)
            {
                // Given back already (a second Dispose by its last borrower): it belongs to the pool.
                return;
            }

            _lent = false;
            // Only a clean connection goes back: open, outside any transaction, no statement running.
            if (State == System.Data.ConnectionState.Open && Transaction is null && _out == 0 && giveBack(this))
            {
                return;
            }
        }

        if (disposing)
        {
            foreach (var command in _idle.Values)
            {
                command.Dispose();
            }

            _idle.Clear();
        }

        base.Dispose(disposing);
    }

    /// <summary>What callers hold: their text and parameters, run on a kept command for that text.</summary>
    [SuppressMessage("Security", "CA2100:Review SQL queries for security vulnerabilities", Justification = "Runs the caller's own text, as any DbCommand does.")]
    private sealed class CachedStatementCommand(StatementCachingConnection connection, SqliteTransaction? transaction) : DbCommand
    {
        private readonly Parameters _parameters = new();

        // The kept command a reader is still reading from, given back when this one is disposed.
        private KeptCommand? _reading;

        [AllowNull]
        public override string CommandText { get; set; } = string.Empty;

        public override int CommandTimeout { get; set; } = connection.DefaultTimeout;

        public override CommandType CommandType { get; set; } = CommandType.Text;

        public override bool DesignTimeVisible { get; set; }

        public override UpdateRowSource UpdatedRowSource { get; set; }

        protected override DbConnection? DbConnection
        {
            get => connection;
            set
            {
                if (!ReferenceEquals(value, connection))
                {
                    throw new NotSupportedException("This command runs on the connection that created it.");
                }
            }
        }

        protected override DbParameterCollection DbParameterCollection => _parameters;

        protected override DbTransaction? DbTransaction { get; set; } = transaction;

        public override void Cancel()
        {
        }

        protected override DbParameter CreateDbParameter() => new SqliteParameter();

        public override void Prepare() => Run(command =>
        {
            command.Prepare();
            return 0;
        });

        public override int ExecuteNonQuery() => Run(command => command.ExecuteNonQuery());

        public override object? ExecuteScalar() => Run(command => command.ExecuteScalar());

        protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
        {
            GiveBackReading();
            var command = Bound();
            try
            {
                var reader = command.ExecuteReader(behavior);
                _reading = command;
                return reader;
            }
            catch
            {
                connection.Drop(command);
                throw;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                GiveBackReading();
            }

            base.Dispose(disposing);
        }

        private T Run<T>(Func<KeptCommand, T> execute)
        {
            var command = Bound();
            T result;
            try
            {
                result = execute(command);
            }
            catch
            {
                connection.Drop(command);
                throw;
            }

            connection.Return(command);
            return result;
        }

        private void GiveBackReading()
        {
            if (_reading is { } command)
            {
                _reading = null;
                connection.Return(command);
            }
        }

        private KeptCommand Bound()
        {
            if (CommandType != CommandType.Text)
            {
                throw new NotSupportedException("SQLite runs text commands only.");
            }

            var command = connection.Rent(CommandText);
            command.Transaction = (SqliteTransaction?)DbTransaction;
            command.CommandTimeout = CommandTimeout;
            foreach (SqliteParameter parameter in _parameters)
            {
                parameter.ParameterName = command.AsWritten(parameter.ParameterName);
                command.Parameters.Add(parameter);
            }

            return command;
        }
    }

    private sealed class Parameters : SqliteParameterCollection;

    private sealed class KeptCommand : SqliteCommand
    {
        // Parameter names as Dapper gives them ("id") and as the text writes them ("@id").
        private readonly Dictionary<string, string> _asWritten = new(StringComparer.Ordinal);

        /// <summary>A reader is still open on it (its caller did not dispose the reader first):
        /// such a command is dropped rather than kept.</summary>
        public bool Reading => DataReader is not null;

        /// <summary>The name of a parameter as this command's text writes it: Dapper gives names
        /// without their prefix, and Microsoft.Data.Sqlite then tries each prefix in turn, with a
        /// new string and a UTF-8 copy of it each time, on every call. A name is looked up in the
        /// text once; one written with two prefixes, or not at all, is left to
        /// Microsoft.Data.Sqlite as it was given.</summary>
        public string AsWritten(string name)
        {
            if (name.Length == 0 || name[0] is '@' or '$' or ':')
            {
                return name;
            }

            if (!_asWritten.TryGetValue(name, out var written))
            {
                written = name;
                var found = 0;
                foreach (var prefix in "@$:")
                {
                    var candidate = prefix + name;
                    if (IsWritten(CommandText, candidate))
                    {
                        written = candidate;
                        found++;
                    }
                }

                written = found == 1 ? written : name;
                _asWritten[name] = written;
            }

            return written;
        }

        private static bool IsWritten(string text, string parameter)
        {
            for (var at = text.IndexOf(parameter, StringComparison.Ordinal); at >= 0; at = text.IndexOf(parameter, at + 1, StringComparison.Ordinal))
            {
                var end = at + parameter.Length;
                if (end == text.Length || !(char.IsLetterOrDigit(text[end]) || text[end] is '_' or '$'))
                {
                    return true;
                }
            }

            return false;
        }
    }
}
