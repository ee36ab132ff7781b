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

/// <summary>Sees every known event on the subscribed topics (Analytics).</summary>
public interface IAnyEventHandler
{
    Task HandleAsync(EventContext context, EventDefinition definition, object data, CancellationToken cancellationToken);
}

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

    /// <summary>When this service's consumer fetched the event from Kafka.</summary>
    public DateTimeOffset FetchedAt { get; init; }

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
    private readonly List<Type> _anyEventHandlers = [];
    private readonly HashSet<string> _topics = [];

    public IReadOnlyCollection<string> Topics => _topics;

    public IReadOnlyList<Type> AnyEventHandlers => _anyEventHandlers;

    public ConsumerRegistration Handle<TEvent, THandler>()
        where TEvent : class
        where THandler : class, IEventHandler<TEvent>
    {
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

    /// <summary>Every known event of <paramref name="topics"/> goes to <typeparamref name="THandler"/>.</summary>
    public ConsumerRegistration HandleAll<THandler>(params TopicSpec[] topics)
        where THandler : class, IAnyEventHandler
    {
        foreach (var topic in topics)
        {
            _topics.Add(topic.Name);
        }

        _anyEventHandlers.Add(typeof(THandler));
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

    internal HashSet<Type> HandlerTypes { get; } = [];

    internal List<Type> PruneStepTypes { get; } = [];

    internal IReadOnlyList<Func<IServiceProvider, EventContext, object, CancellationToken, Task>> HandlersOf(string typeName) =>
        _handlers.GetValueOrDefault(typeName) ?? [];
}
