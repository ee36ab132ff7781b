using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Events;
using Bookstore.Messaging.Storage;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;

namespace Bookstore.Messaging.Consuming;

/// <summary>Handles one event type. Everything it writes through <see cref="EventContext"/> commits
/// in one transaction with the record that the event was processed, and with the events it publishes.</summary>
public interface IEventHandler<in TEvent>
    where TEvent : class
{
    Task HandleAsync(EventContext context, TEvent data, CancellationToken cancellationToken);
}

/// <summary>Sees every known event of its topics, a batch at a time (Analytics): what it writes
/// per event it writes for the whole batch, a statement per table, in the batch's transaction.</summary>
/// <remarks>Should the batch fail, it is given its events again one at a time, each retried and
/// finally dead-lettered alone: one poison event never holds up the others.</remarks>
public interface IEventBatchHandler
{
    Task HandleAsync(DbTransaction transaction, IReadOnlyList<ConsumedEvent> events, CancellationToken cancellationToken);
}

/// <summary>An event as a consumer read it: where from, its definition in the catalog, and its data.</summary>
/// <param name="Topic">The logical topic name, as in the topic table.</param>
public sealed record ConsumedEvent(CloudEvent Event, EventDefinition Definition, object Data, string Topic, int Partition, long Offset);

/// <summary>What a handler may use: the event, where it came from, and the batch's transaction.</summary>
public sealed class EventContext(DbTransaction transaction, Outbox.Outbox outbox, ICollection<Action>? afterCommit = null)
{
    public DbTransaction Transaction { get; } = transaction;

    /// <summary>What the SQL of this database's backend says differently.</summary>
    public SqlDialect Sql => SqlDialect.Of(Transaction);

    public DbConnection Connection => Transaction.Connection!;

    public required CloudEvent Event { get; init; }

    /// <summary>The logical topic name, as in the topic table.</summary>
    public required string Topic { get; init; }

    public required int Partition { get; init; }

    public required long Offset { get; init; }

    /// <summary>Runs <paramref name="action"/> once the batch's transaction committed (e.g. waking a
    /// worker for what the handler recorded: woken earlier, it might look before the rows exist).</summary>
    public void AfterCommit(Action action) =>
        (afterCommit ?? throw new InvalidOperationException("This context runs no transaction of its own to commit.")).Add(action);

    /// <summary>Publishes <paramref name="data"/> when, and only when, this transaction commits.</summary>
    public Task PublishAsync<T>(T data)
        where T : class => outbox.AddAsync(Transaction, data);
}

/// <summary>Which events a service consumes and with which handlers.</summary>
public sealed class ConsumerRegistration
{
    private readonly Dictionary<string, List<Func<IServiceProvider, EventContext, object, CancellationToken, Task>>> _handlers = [];
    private readonly List<Type> _batchHandlers = [];
    private readonly HashSet<string> _topics = [];

    public IReadOnlyCollection<string> Topics => _topics;

    public IReadOnlyList<Type> BatchHandlers => _batchHandlers;

    /// <summary>True for a consumer that watches the saga and drives none of it (Analytics): it
    /// fetches in large batches, a second apart at most (<see cref="KafkaClientConfigs.Observing"/>).</summary>
    public bool IsObserver { get; private set; }

    /// <summary>Makes this consumer an observer (<see cref="IsObserver"/>).</summary>
    public ConsumerRegistration Observe()
    {
        IsObserver = true;
        return this;
    }

    public ConsumerRegistration Handle<TEvent, THandler>()
        where TEvent : class
        where THandler : class, IEventHandler<TEvent>
    {
        RefuseMixing(batch: false);
        var definition = EventCatalog.For<TEvent>();
        _topics.Add(definition.Topic.Name);
        if (!_handlers.TryGetValue(definition.TypeName, out var list))
        {
            _handlers[definition.TypeName] = list = [];
        }

        list.Add((services, context, data, ct) => services.GetRequiredService<THandler>().HandleAsync(context, (TEvent)data, ct));
        HandlerTypes.Add(typeof(THandler));
        return this;
    }

    /// <summary>Every known event of <paramref name="topics"/> goes to <typeparamref name="THandler"/>, a batch at a time.</summary>
    public ConsumerRegistration HandleAll<THandler>(params TopicSpec[] topics)
        where THandler : class, IEventBatchHandler
    {
        RefuseMixing(batch: true);
        foreach (var topic in topics)
        {
            _topics.Add(topic.Name);
        }

        _batchHandlers.Add(typeof(THandler));
        HandlerTypes.Add(typeof(THandler));
        return this;
    }

    /// <summary>Records of the service's own that <typeparamref name="TStep"/> prunes by age, in the
    /// one loop that prunes the processed-event records.</summary>
    public ConsumerRegistration Prune<TStep>()
        where TStep : class, IPruneStep
    {
        PruneStepTypes.Add(typeof(TStep));
        return this;
    }

    /// <summary>One way or the other: a failed batch is handled again one event at a time, which
    /// would run the typed handlers' work of its events a second time.</summary>
    private void RefuseMixing(bool batch)
    {
        if (batch ? _handlers.Count > 0 : _batchHandlers.Count > 0)
        {
            throw new InvalidOperationException("A consumer has typed handlers (Handle<E, H>) or batch handlers (HandleAll<H>), not both.");
        }
    }

    internal HashSet<Type> HandlerTypes { get; } = [];

    internal List<Type> PruneStepTypes { get; } = [];

    internal IReadOnlyList<Func<IServiceProvider, EventContext, object, CancellationToken, Task>> HandlersOf(string typeName) =>
        _handlers.GetValueOrDefault(typeName) ?? [];
}
