using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Telemetry;
using Dapper;
using System.Data.Common;

namespace Bookstore.Messaging.Outbox;

/// <summary>Events a transaction emits: written to the outbox table inside the caller's
/// transaction, so they exist exactly when the state change they describe does.</summary>
public sealed class Outbox(MessagingOptions options, OutboxSignal signal)
{
    /// <summary>Adds the event; it is published after the transaction commits.</summary>
    public async Task<EventRecord> AddAsync<T>(DbTransaction transaction, T data)
        where T : class
    {
        var definition = EventCatalog.For<T>();
        // Started first: the serializer writes the current span's context as the event's traceparent.
        using var span = MessagingTelemetry.StartCreate(definition.Topic.Name, definition.TypeName);
        var record = EventSerializer.Serialize(definition, data, options.ServiceName);
        MessagingTelemetry.Created(span, record.EventId);
        await AddRecordAsync(transaction, record);
        return record;
    }

    /// <summary>Adds an already serialized record (a dead letter, say) to the outbox.</summary>
    public static Task AddRecordAsync(DbTransaction transaction, EventRecord record)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(record);
        return transaction.Connection!.ExecuteAsync(
            "INSERT INTO outbox (event_id, topic, key, value) VALUES (@EventId, @Topic, @Key, @Value)",
            record,
            transaction);
    }

    /// <summary>Tells the relay that committed rows are waiting: it publishes at once instead of at its next poll.</summary>
    public void Committed() => signal.Notify();
}

/// <summary>Wakes the relay when a transaction with outbox rows has committed in this process.</summary>
public sealed class OutboxSignal : WakeSignal;
