using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests;

/// <summary>Issue 12's check: the five services as separate processes on the real cluster,
/// exporting over OTLP/HTTP (the standard <c>OTEL_*</c> variables) to a receiver in this process.
/// One order placed over HTTP with a <c>traceparent</c> of the test's own is one trace across all
/// five services, and the messaging spans hang together as the OpenTelemetry messaging conventions
/// and the outbox say: <c>create</c> (the outbox write), <c>publish</c> (the relay, child of and
/// linked to the create span), <c>process</c> (each service's handling, child of the create span
/// named by the event's traceparent).</summary>
[Collection(KafkaCollection.Name)]
public sealed class TracingTests(KafkaClusterFixture fixture)
{
    private static readonly TimeSpan TraceDeadline = TimeSpan.FromSeconds(90);
    private const string Isbn = "978-1-4920-4346-3";

    /// <summary>The service that writes each topic (the README's table).</summary>
    private static readonly Dictionary<string, string> Writers = new(StringComparer.Ordinal)
    {
        [Topics.BookOrders.Name] = ConsumerGroups.Orders,
        [Topics.InventoryEvents.Name] = ConsumerGroups.Inventory,
        [Topics.BookCatalogUpdates.Name] = ConsumerGroups.Inventory,
        [Topics.PaymentResults.Name] = ConsumerGroups.Payments,
        [Topics.NotificationEvents.Name] = ConsumerGroups.Notifications,
    };

    /// <summary>The pending work of a confirmed order: its span's name, its service, the event it emits.</summary>
    private static readonly (string Name, string Service, EventDefinition Emits)[] PendingWork =
    [
        ("charge", ConsumerGroups.Payments, EventCatalog.PaymentSucceeded),
        ("email", ConsumerGroups.Notifications, EventCatalog.NotificationSent),
    ];

    private static readonly string[] DumpedAttributes = ["messaging.message.id", "cloudevents.event_type", "messaging.consumer.group.name", "messaging.destination.partition.id", "messaging.kafka.offset"];

    /// <summary>The events of a confirmed order and the services with a handler for each (their Program.cs).</summary>
    private static readonly (EventDefinition Event, string[] Handlers)[] Hops =
    [
        (EventCatalog.OrderPlaced, [ConsumerGroups.Inventory, ConsumerGroups.Notifications, ConsumerGroups.Analytics]),
        (EventCatalog.StockReserved, [ConsumerGroups.Orders, ConsumerGroups.Payments, ConsumerGroups.Analytics]),
        (EventCatalog.PaymentSucceeded, [ConsumerGroups.Orders, ConsumerGroups.Inventory, ConsumerGroups.Analytics]),
        (EventCatalog.OrderConfirmed, [ConsumerGroups.Notifications, ConsumerGroups.Analytics]),
        (EventCatalog.NotificationSent, [ConsumerGroups.Analytics]),
    ];

    [Fact]
    public async Task One_order_placed_with_a_traceparent_is_one_trace_across_the_five_services_with_process_spans_children_of_create_spans_and_publish_spans_linked_to_them()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var suite = await BookstoreSuite.StartAsync(fixture, "tracing", receiver.ExporterEnvironment());

        // The test is the client: its span id is the parent of the Order Service's server span.
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        var clientSpanId = ActivitySpanId.CreateRandom().ToHexString();
        var orderId = await PlaceAsync(suite, $"00-{traceId}-{clientSpanId}-01");

        List<OtlpSpan> trace = [];
        List<string> missing = [];
        string status = "unknown";
        var complete = await Poll.UntilAsync(
            async _ =>
            {
                status = (await suite["Orders"].GetAsync<OrderView>($"/orders/{orderId}")).Status;
                trace = [.. receiver.Trace(traceId)];
                missing = Missing(trace, clientSpanId);
                if (status != "Confirmed")
                {
                    missing.Add($"order {orderId} is {status}, not Confirmed");
                }

                return missing.Count == 0;
            },
            TraceDeadline,
            TimeSpan.FromMilliseconds(250));
        Assert.True(complete, $"within {TraceDeadline} the trace {traceId} had every hop of order {orderId}; still missing:\n  " +
            string.Join("\n  ", missing) + $"\n{Dump(trace)}\nreceiver problems: {string.Join("; ", receiver.Problems)}" +
            $"\nspans received in all: {receiver.Spans.Count}, of services {string.Join(", ", receiver.Spans.Select(s => s.ServiceName).Distinct())}");

        // Every way the trace departs from the contract, reported together.
        var violations = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                violations.Add(message);
            }
        }

        var byId = trace.ToDictionary(s => s.SpanId);
        OtlpSpan? Parent(OtlpSpan span) => span.ParentSpanId is { } id ? byId.GetValueOrDefault(id) : null;

        // One trace id across the five services, and none of the order's events in another trace.
        Check(trace.Select(s => s.ServiceName).Distinct().Order(StringComparer.Ordinal).SequenceEqual(ConsumerGroups.All.Order(StringComparer.Ordinal)),
            $"the trace has spans of exactly the five services; it has {string.Join(", ", trace.Select(s => s.ServiceName).Distinct())}");
        var eventIds = trace.Select(s => s.Attribute("messaging.message.id")).OfType<string>().ToHashSet(StringComparer.Ordinal);
        foreach (var stray in receiver.Spans.Where(s => s.TraceId != traceId && s.Attribute("messaging.message.id") is { } id && eventIds.Contains(id)))
        {
            Check(false, $"{stray}: a span of one of the order's events in another trace");
        }

        // The root: the Order Service's server span, continuing the request's traceparent.
        var roots = trace.Where(s => s.ParentSpanId == clientSpanId).ToList();
        Check(roots.Count == 1, $"one span continues the request's traceparent; saw {roots.Count}");
        var root = roots[0];
        Check((root.ServiceName, root.Kind, root.Name) == (ConsumerGroups.Orders, OtlpSpanKind.Server, "POST /orders"), $"{root}: the root is order-service's Server span 'POST /orders'");

        var creates = trace.Where(s => Operation(s) == "create").ToList();
        var publishes = trace.Where(s => Operation(s) == "publish").ToList();
        var processes = trace.Where(s => Operation(s) == "process").ToList();

        // create: the outbox write, in the writer of the topic, under the request, the handling or the pending work that emitted it.
        foreach (var create in creates)
        {
            var topic = CheckMessagingSpan(create, "create", OtlpSpanKind.Producer, suite.Namespace, Check);
            Check(topic is null || Writers[topic] == create.ServiceName, $"{create}: {topic} is written by {(topic is null ? "?" : Writers[topic])}");
            Check(create.Attribute("messaging.operation.type") == "create", $"{create}: messaging.operation.type = create, not {create.Attribute("messaging.operation.type")}");
            Check(create.Attribute("cloudevents.event_id") is { Length: > 0 } id && id == create.Attribute("messaging.message.id"), $"{create}: cloudevents.event_id = messaging.message.id");
            Check(create.Attribute("cloudevents.event_type") is { Length: > 0 }, $"{create}: has cloudevents.event_type");
            var parent = Parent(create);
            Check(parent?.ServiceName == create.ServiceName, $"{create}: its parent {parent} is a span of the service that wrote the event");
            Check(parent == root || (parent is not null && Operation(parent) == "process") || (parent is not null && Parent(parent) is { } grandparent && Operation(grandparent) == "process"),
                $"{create}: written under POST /orders, a process span, or pending work under a process span; its parent is {parent}");
        }

        var placed = creates.Where(c => c.Attribute("cloudevents.event_type") == EventCatalog.OrderPlaced.TypeName).ToList();
        Check(placed.Count == 1 && Ancestors(placed[0], byId).Contains(root), $"one OrderPlaced create span, under POST /orders; saw {string.Join(", ", placed)}");

        // publish: the relay's send of that row, child of and linked to its create span.
        foreach (var publish in publishes)
        {
            var topic = CheckMessagingSpan(publish, "publish", OtlpSpanKind.Producer, suite.Namespace, Check);
            var create = Parent(publish);
            Check(create is not null && Operation(create) == "create", $"{publish}: its parent is a create span, not {create}");
            Check(create?.ServiceName == publish.ServiceName, $"{publish}: published by the service that wrote it ({create?.ServiceName})");
            Check(create is null || Topic(create, suite.Namespace) == topic, $"{publish}: the topic of its create span {create}");
            Check(create?.Attribute("messaging.message.id") == publish.Attribute("messaging.message.id"), $"{publish}: the messaging.message.id of its create span {create}");
            Check(create is not null && publish.Links.Any(l => l.TraceId == create.TraceId && l.SpanId == create.SpanId),
                $"{publish}: linked to its create span {create}; links: {string.Join(", ", publish.Links.Select(l => $"{l.TraceId}/{l.SpanId}"))}");
            Check((publish.Attribute("messaging.operation.type"), publish.Attribute("messaging.operation.name")) == ("send", "publish"),
                $"{publish}: messaging.operation.type = send and .name = publish, not {publish.Attribute("messaging.operation.type")} and {publish.Attribute("messaging.operation.name")}");
            Check(publish.Attribute("messaging.destination.partition.id") is { Length: > 0 }, $"{publish}: has messaging.destination.partition.id");
            Check(long.TryParse(publish.Attribute("messaging.kafka.offset"), out var offset) && offset >= 0, $"{publish}: has messaging.kafka.offset");
        }

        foreach (var unpublished in creates.Where(c => !publishes.Any(p => p.ParentSpanId == c.SpanId)))
        {
            Check(false, $"{unpublished}: no publish span under it");
        }

        // process: each service's handling, child of the create span its event's traceparent names,
        // reading the very record the relay published.
        foreach (var process in processes)
        {
            var topic = CheckMessagingSpan(process, "process", OtlpSpanKind.Consumer, suite.Namespace, Check);
            var create = Parent(process);
            Check(create is not null && Operation(create) == "create", $"{process}: its parent is a create span, not {create}");
            Check(topic is null || create?.ServiceName == Writers[topic], $"{process}: its create span {create} is of the service that writes {topic}");
            Check(create is null || Topic(create, suite.Namespace) == topic, $"{process}: the topic of its create span {create}");
            Check(create?.Attribute("messaging.message.id") == process.Attribute("messaging.message.id"), $"{process}: the messaging.message.id of its create span {create}");
            Check(create?.Attribute("cloudevents.event_type") == process.Attribute("cloudevents.event_type"), $"{process}: the cloudevents.event_type of its create span {create}");
            Check(process.Attribute("messaging.operation.type") == "process", $"{process}: messaging.operation.type = process, not {process.Attribute("messaging.operation.type")}");
            var group = process.Attribute("messaging.consumer.group.name");
            Check(group == process.ServiceName || group == suite.Namespace + process.ServiceName, $"{process}: messaging.consumer.group.name is its service's group, not {group}");
            Check(
                publishes.Any(p => p.Attribute("messaging.message.id") == process.Attribute("messaging.message.id")
                    && p.Attribute("messaging.destination.partition.id") == process.Attribute("messaging.destination.partition.id")
                    && p.Attribute("messaging.kafka.offset") == process.Attribute("messaging.kafka.offset")),
                $"{process}: partition {process.Attribute("messaging.destination.partition.id")} offset {process.Attribute("messaging.kafka.offset")} is where the relay published it");
        }

        // Each event of the order is handled by every service with a handler for it.
        foreach (var (definition, handlers) in Hops)
        {
            var written = creates.Where(c => c.Attribute("cloudevents.event_type") == definition.TypeName).Select(c => c.SpanId).ToHashSet(StringComparer.Ordinal);
            var handledBy = processes.Where(p => written.Contains(p.ParentSpanId!)).Select(p => p.ServiceName).ToHashSet(StringComparer.Ordinal);
            Check(handlers.All(handledBy.Contains), $"{definition.TypeName} processed by {string.Join(", ", handlers)}; saw {string.Join(", ", handledBy)}");
        }

        // Pending work: the gateway call and the email, children of the handling that recorded them,
        // parents of the events they emit.
        foreach (var (name, service, emitted) in PendingWork)
        {
            var writes = creates.Where(c => c.Attribute("cloudevents.event_type") == emitted.TypeName).ToList();
            Check(writes.Count > 0, $"a create span of {emitted.TypeName}");
            foreach (var create in writes)
            {
                var work = Parent(create);
                Check(work is not null && work.Name == name && work.ServiceName == service && Operation(work) is null,
                    $"{create}: written under the '{name}' span of {service}; its parent is {work}");
                var handling = work is null ? null : Parent(work);
                Check(handling is not null && Operation(handling) == "process" && handling.ServiceName == service,
                    $"{work}: the '{name}' span is a child of a process span of {service}, not {handling}");
            }
        }

        Assert.True(violations.Count == 0, $"the trace of order {orderId} departs from the contract in {violations.Count} way(s):\n  {string.Join("\n  ", violations)}\n{Dump(trace)}");
    }

    /// <summary>What the trace still lacks for the order's every hop, with exports still under way.</summary>
    private static List<string> Missing(List<OtlpSpan> trace, string clientSpanId)
    {
        var missing = new List<string>();
        var ids = trace.Select(s => s.SpanId).ToHashSet(StringComparer.Ordinal);
        foreach (var service in ConsumerGroups.All.Where(g => trace.All(s => s.ServiceName != g)))
        {
            missing.Add($"no span of {service}");
        }

        if (!trace.Any(s => s.ParentSpanId == clientSpanId))
        {
            missing.Add($"no span whose parent is the request's ({clientSpanId})");
        }

        missing.AddRange(trace.Where(s => s.ParentSpanId is { } parent && parent != clientSpanId && !ids.Contains(parent))
            .Select(s => $"the parent {s.ParentSpanId} of {s} (not received)"));
        var creates = trace.Where(s => Operation(s) == "create").ToList();
        missing.AddRange(creates.Where(c => !trace.Any(p => Operation(p) == "publish" && p.ParentSpanId == c.SpanId)).Select(c => $"a publish span under {c}"));
        foreach (var (definition, handlers) in Hops)
        {
            var written = creates.Where(c => c.Attribute("cloudevents.event_type") == definition.TypeName).ToList();
            if (written.Count == 0)
            {
                missing.Add($"a create span of {definition.TypeName}");
            }

            foreach (var group in handlers.Where(g => !trace.Any(p => Operation(p) == "process" && p.ServiceName == g && written.Any(c => c.SpanId == p.ParentSpanId))))
            {
                missing.Add($"{group}'s process span of {definition.TypeName}");
            }
        }

        return missing;
    }

    /// <summary>The messaging attributes every create, publish and process span has; returns the
    /// logical topic (without the test's namespace), or null when it names none of the suite's.</summary>
    private static string? CheckMessagingSpan(OtlpSpan span, string operation, OtlpSpanKind kind, string @namespace, Action<bool, string> check)
    {
        check(span.Kind == kind, $"{span}: kind {kind}");
        check(span.Attribute("messaging.system") == "kafka", $"{span}: messaging.system = kafka, not {span.Attribute("messaging.system")}");
        check(span.Attribute("messaging.message.id") is { Length: > 0 }, $"{span}: has messaging.message.id");
        var destination = span.Attribute("messaging.destination.name");
        var topic = destination is not null && destination.StartsWith(@namespace, StringComparison.Ordinal) ? destination[@namespace.Length..] : destination;
        check(topic is not null && Writers.ContainsKey(topic), $"{span}: messaging.destination.name ({destination}) is a topic of the suite");
        check(span.Name == $"{operation} {destination}" || span.Name == $"{operation} {topic}", $"{span}: named '{operation} {{topic}}' after its messaging.destination.name ({destination})");
        return topic is not null && Writers.ContainsKey(topic) ? topic : null;
    }

    /// <summary>The messaging operation a span stands for, by its name (<c>create</c>, <c>publish</c>, <c>process</c>), or null.</summary>
    private static string? Operation(OtlpSpan span) =>
        span.Name.IndexOf(' ', StringComparison.Ordinal) is > 0 and var space && span.Name[..space] is "create" or "publish" or "process" && span.Attribute("messaging.system") is not null
            ? span.Name[..space]
            : null;

    private static string Topic(OtlpSpan span, string @namespace) =>
        span.Attribute("messaging.destination.name") is { } d && d.StartsWith(@namespace, StringComparison.Ordinal) ? d[@namespace.Length..] : span.Attribute("messaging.destination.name") ?? string.Empty;

    private static List<OtlpSpan> Ancestors(OtlpSpan span, Dictionary<string, OtlpSpan> byId)
    {
        var ancestors = new List<OtlpSpan>();
        while (span.ParentSpanId is { } parent && byId.TryGetValue(parent, out var next) && ancestors.Count < byId.Count)
        {
            ancestors.Add(next);
            span = next;
        }

        return ancestors;
    }

    private static string Dump(IEnumerable<OtlpSpan> spans)
    {
        var text = new StringBuilder();
        foreach (var s in spans.OrderBy(s => s.Start))
        {
            text.Append(CultureInfo.InvariantCulture, $"  {s.Start:HH:mm:ss.fff} {s.ServiceName,-20} {s.Kind,-8} {s.Name,-40} span {s.SpanId} parent {s.ParentSpanId ?? "-"}");
            foreach (var key in DumpedAttributes)
            {
                if (s.Attribute(key) is { } value)
                {
                    text.Append(CultureInfo.InvariantCulture, $" {key}={value}");
                }
            }

            if (s.Links.Count > 0)
            {
                text.Append(CultureInfo.InvariantCulture, $" links={string.Join(",", s.Links.Select(l => l.SpanId))}");
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    private static async Task<string> PlaceAsync(BookstoreSuite suite, string traceparent)
    {
        // A client of its own that adds no trace headers: the request carries exactly this traceparent.
        using var http = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = suite.Orders.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/orders")
        {
            Content = JsonContent.Create(new { customerId = "tracing", lines = new[] { new { isbn = Isbn, quantity = 1 } } }),
        };
        request.Headers.Add("traceparent", traceparent);
        using var response = await http.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST /orders: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<OrderView>())!.Id;
    }

    private sealed record OrderView(string Id, string Status);
}
