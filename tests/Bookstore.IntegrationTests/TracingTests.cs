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

    private static readonly string[] PendingWorkSpans = ["charge", "send email"];

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

        var byId = trace.ToDictionary(s => s.SpanId);
        var context = Dump(trace);

        // One trace id across the five services, and none of the order's events in another trace.
        Assert.Equal(ConsumerGroups.All.Order(StringComparer.Ordinal), trace.Select(s => s.ServiceName).Distinct().Order(StringComparer.Ordinal));
        var eventIds = trace.Select(s => s.Attribute("messaging.message.id")).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var elsewhere = receiver.Spans.Where(s => s.TraceId != traceId && s.Attribute("messaging.message.id") is { } id && eventIds.Contains(id)).ToList();
        Assert.True(elsewhere.Count == 0, $"spans of the order's events in another trace:\n{Dump(elsewhere)}");

        // The root: the Order Service's server span, continuing the request's traceparent.
        var root = Assert.Single(trace, s => s.ParentSpanId == clientSpanId);
        Assert.Equal((ConsumerGroups.Orders, OtlpSpanKind.Server, "POST /orders"), (root.ServiceName, root.Kind, root.Name));

        var creates = trace.Where(s => Operation(s) == "create").ToList();
        var publishes = trace.Where(s => Operation(s) == "publish").ToList();
        var processes = trace.Where(s => Operation(s) == "process").ToList();

        // create: the outbox write, in the writer of the topic, under the request or the handling (or pending work) that emitted it.
        foreach (var create in creates)
        {
            var topic = AssertMessagingSpan(create, "create", OtlpSpanKind.Producer, suite.Namespace, context);
            Assert.True(Writers[topic] == create.ServiceName, $"{create}: {topic} is written by {Writers[topic]}\n{context}");
            Assert.Equal("create", create.Attribute("messaging.operation.type"));
            Assert.True(create.Attribute("cloudevents.event_id") is { Length: > 0 } id && id == create.Attribute("messaging.message.id"), $"{create}: cloudevents.event_id = messaging.message.id\n{context}");
            Assert.True(create.Attribute("cloudevents.event_type") is { Length: > 0 }, $"{create}: cloudevents.event_type\n{context}");
            var parent = Parent(create, byId, context);
            Assert.True(parent.ServiceName == create.ServiceName, $"{create}: its parent {parent} is a span of the service that wrote the event\n{context}");
            Assert.True(parent == root || Operation(parent) == "process" || parent.Name is "charge" or "send email" || Ancestors(create, byId).Contains(root),
                $"{create}: written under POST /orders, a process span or pending work; its parent is {parent}\n{context}");
        }

        var placed = Assert.Single(creates, c => c.Attribute("cloudevents.event_type") == EventCatalog.OrderPlaced.TypeName);
        Assert.True(Ancestors(placed, byId).Contains(root), $"the OrderPlaced create span {placed} descends from POST /orders\n{context}");

        // publish: the relay's send of that row, child of and linked to its create span.
        foreach (var publish in publishes)
        {
            var topic = AssertMessagingSpan(publish, "publish", OtlpSpanKind.Producer, suite.Namespace, context);
            var create = Parent(publish, byId, context);
            Assert.True(Operation(create) == "create", $"{publish}: its parent is a create span, not {create}\n{context}");
            Assert.Equal(create.ServiceName, publish.ServiceName);
            Assert.Equal(Topic(create, suite.Namespace), topic);
            Assert.Equal(create.Attribute("messaging.message.id"), publish.Attribute("messaging.message.id"));
            Assert.True(publish.Links.Any(l => l.TraceId == create.TraceId && l.SpanId == create.SpanId), $"{publish}: linked to its create span {create}; links: {string.Join(", ", publish.Links.Select(l => $"{l.TraceId}/{l.SpanId}"))}\n{context}");
            Assert.Equal(("send", "publish"), (publish.Attribute("messaging.operation.type"), publish.Attribute("messaging.operation.name")));
            Assert.True(publish.Attribute("messaging.destination.partition.id") is { Length: > 0 }, $"{publish}: messaging.destination.partition.id\n{context}");
            Assert.True(long.TryParse(publish.Attribute("messaging.kafka.offset"), out var offset) && offset >= 0, $"{publish}: messaging.kafka.offset\n{context}");
        }

        Assert.All(creates, c => Assert.True(publishes.Any(p => p.ParentSpanId == c.SpanId), $"{c} was published (a publish span under it)\n{context}"));

        // process: each service's handling, child of the create span its event's traceparent names,
        // reading the very record the relay published.
        foreach (var process in processes)
        {
            var topic = AssertMessagingSpan(process, "process", OtlpSpanKind.Consumer, suite.Namespace, context);
            var create = Parent(process, byId, context);
            Assert.True(Operation(create) == "create", $"{process}: its parent is a create span, not {create}\n{context}");
            Assert.Equal(Writers[topic], create.ServiceName);
            Assert.Equal(Topic(create, suite.Namespace), topic);
            Assert.Equal(create.Attribute("messaging.message.id"), process.Attribute("messaging.message.id"));
            Assert.Equal(create.Attribute("cloudevents.event_type"), process.Attribute("cloudevents.event_type"));
            Assert.Equal("process", process.Attribute("messaging.operation.type"));
            var group = process.Attribute("messaging.consumer.group.name");
            Assert.True(group == process.ServiceName || group == suite.Namespace + process.ServiceName, $"{process}: messaging.consumer.group.name is its service's group; got {group}\n{context}");
            Assert.True(
                publishes.Any(p => p.Attribute("messaging.message.id") == process.Attribute("messaging.message.id")
                    && p.Attribute("messaging.destination.partition.id") == process.Attribute("messaging.destination.partition.id")
                    && p.Attribute("messaging.kafka.offset") == process.Attribute("messaging.kafka.offset")),
                $"{process}: partition {process.Attribute("messaging.destination.partition.id")} offset {process.Attribute("messaging.kafka.offset")} is where the relay published it\n{context}");
        }

        // Each event of the order is handled by every service with a handler for it.
        foreach (var (definition, handlers) in Hops)
        {
            var written = creates.Where(c => c.Attribute("cloudevents.event_type") == definition.TypeName).Select(c => c.SpanId).ToHashSet(StringComparer.Ordinal);
            var handledBy = processes.Where(p => written.Contains(p.ParentSpanId!)).Select(p => p.ServiceName).ToHashSet(StringComparer.Ordinal);
            Assert.True(handlers.All(handledBy.Contains), $"{definition.TypeName} processed by {string.Join(", ", handlers)}; saw {string.Join(", ", handledBy)}\n{context}");
        }

        // Pending work: the gateway call and the email, under the handling that recorded them, with the events they emit under them.
        foreach (var (name, service, topic) in new[] { ("charge", ConsumerGroups.Payments, Topics.PaymentResults.Name), ("send email", ConsumerGroups.Notifications, Topics.NotificationEvents.Name) })
        {
            var work = trace.Where(s => s.Name == name).ToList();
            Assert.NotEmpty(work);
            foreach (var span in work)
            {
                Assert.Equal(service, span.ServiceName);
                var parent = Parent(span, byId, context);
                Assert.True(Operation(parent) == "process" && parent.ServiceName == service, $"{span}: child of a process span of {service}, not {parent}\n{context}");
            }

            Assert.True(creates.Any(c => Topic(c, suite.Namespace) == topic && work.Any(w => w.SpanId == c.ParentSpanId)), $"a create {topic} span under a {name} span\n{context}");
        }
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

        foreach (var name in PendingWorkSpans.Where(n => trace.All(s => s.Name != n)))
        {
            missing.Add($"a {name} span");
        }

        return missing;
    }

    /// <summary>The messaging attributes every create, publish and process span has; returns the
    /// logical topic (without the test's namespace).</summary>
    private static string AssertMessagingSpan(OtlpSpan span, string operation, OtlpSpanKind kind, string @namespace, string context)
    {
        Assert.True(span.Kind == kind, $"{span}: kind {kind}\n{context}");
        Assert.True(span.Attribute("messaging.system") == "kafka", $"{span}: messaging.system = kafka, not {span.Attribute("messaging.system")}\n{context}");
        var destination = span.Attribute("messaging.destination.name");
        Assert.True(destination is { Length: > 0 }, $"{span}: messaging.destination.name\n{context}");
        var topic = destination!.StartsWith(@namespace, StringComparison.Ordinal) ? destination[@namespace.Length..] : destination;
        Assert.True(Writers.ContainsKey(topic), $"{span}: messaging.destination.name {destination} is a topic of the suite\n{context}");
        Assert.True(span.Name == $"{operation} {destination}" || span.Name == $"{operation} {topic}", $"{span}: named '{operation} {{topic}}'\n{context}");
        Assert.True(span.Attribute("messaging.message.id") is { Length: > 0 }, $"{span}: messaging.message.id\n{context}");
        return topic;
    }

    /// <summary>The messaging operation a span stands for, by its name (<c>create</c>, <c>publish</c>, <c>process</c>), or null.</summary>
    private static string? Operation(OtlpSpan span) =>
        span.Name.IndexOf(' ', StringComparison.Ordinal) is > 0 and var space && span.Name[..space] is "create" or "publish" or "process" && span.Attribute("messaging.system") is not null
            ? span.Name[..space]
            : null;

    private static string Topic(OtlpSpan span, string @namespace) =>
        span.Attribute("messaging.destination.name") is { } d && d.StartsWith(@namespace, StringComparison.Ordinal) ? d[@namespace.Length..] : span.Attribute("messaging.destination.name") ?? string.Empty;

    private static OtlpSpan Parent(OtlpSpan span, Dictionary<string, OtlpSpan> byId, string context)
    {
        Assert.True(span.ParentSpanId is { } id && byId.ContainsKey(id), $"{span}: its parent is a span of the trace\n{context}");
        return byId[span.ParentSpanId!];
    }

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
