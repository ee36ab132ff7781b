using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using Bookstore.IntegrationTests.Fixture;
using Bookstore.Messaging;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Bookstore.IntegrationTests;

/// <summary>The test's OTLP receiver against the real OpenTelemetry .NET SDK and its OTLP exporter
/// (over HTTP with protobuf, as the services export): what the SDK sends decodes exactly, so a
/// tracing test that reads the services' spans through it reads what they recorded. No cluster.</summary>
public sealed class OtlpReceiverTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private static readonly string[] Tags = ["a", "b"];
    private static readonly long[] Numbers = [1, -2, long.MaxValue];

    [Fact]
    public async Task Spans_exported_by_the_opentelemetry_sdk_decode_exactly_with_parents_links_attributes_events_and_resource()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var sourceName = $"otlp-decoder-test-{Guid.NewGuid():N}";
        using var source = new ActivitySource(sourceName, "4.5.6");
        var stopped = new List<Activity>();
        using (var provider = TracerProvider(receiver, sourceName))
        {
            // A server span (the root), a producer child linked to another trace's span, an internal
            // grandchild with an event and an error status, and a consumer span whose parent is
            // remote (a traceparent read from a message).
            var elsewhere = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, "vendor=value");
            var remote = ActivityContext.Parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", null);
            using (var root = source.StartActivity("POST /orders", ActivityKind.Server)!)
            {
                root.SetTag("http.request.method", "POST");
                root.SetTag("http.response.status_code", 202);
                root.SetTag("duration.ratio", 0.25);
                root.SetTag("retried", false);
                root.SetTag("tags", Tags);
                root.SetTag("numbers", Numbers);
                using (var producer = source.StartActivity("publish book-orders", ActivityKind.Producer, root.Context, links: [new ActivityLink(elsewhere, new ActivityTagsCollection { ["link.reason"] = "written", ["link.count"] = 3L })])!)
                {
                    producer.SetTag("messaging.system", "kafka");
                    producer.SetTag("messaging.kafka.offset", 42L);
                    using (var inner = source.StartActivity("charge", ActivityKind.Internal)!)
                    {
                        inner.AddEvent(new ActivityEvent("gateway.answered", DateTimeOffset.UtcNow, new ActivityTagsCollection { ["attempt"] = 2L }));
                        inner.SetStatus(ActivityStatusCode.Error, "card declined");
                        inner.Stop();
                        stopped.Add(inner);
                    }

                    producer.Stop();
                    stopped.Add(producer);
                }

                root.Stop();
                stopped.Add(root);
            }

            using (var consumer = source.StartActivity("process book-orders", ActivityKind.Consumer, remote)!)
            {
                consumer.SetTag("messaging.consumer.group.name", "inventory-service");
                consumer.SetTag("messaging.destination.partition.id", "3");
                consumer.Stop();
                stopped.Add(consumer);
            }

            provider.ForceFlush();
        }

        Assert.True(await Poll.UntilAsync(() => receiver.Spans.Count >= stopped.Count, Deadline), $"{stopped.Count} spans received; got {receiver.Spans.Count}");
        Assert.Empty(receiver.Problems);
        Assert.Equal(stopped.Count, receiver.Spans.Count);

        foreach (var activity in stopped)
        {
            var span = Assert.Single(receiver.Spans, s => s.SpanId == activity.SpanId.ToHexString());
            Assert.Equal(activity.TraceId.ToHexString(), span.TraceId);
            Assert.Equal(activity.ParentSpanId == default ? null : activity.ParentSpanId.ToHexString(), span.ParentSpanId);
            Assert.Equal(activity.DisplayName, span.Name);
            Assert.Equal((OtlpSpanKind)((int)activity.Kind + 1), span.Kind);
            Assert.Equal(new DateTimeOffset(activity.StartTimeUtc), span.Start);
            Assert.Equal(new DateTimeOffset(activity.StartTimeUtc + activity.Duration), span.End);
            AssertAttributes(activity.TagObjects, span.Attributes);
            Assert.Equal(activity.Links.Count(), span.Links.Count);
            foreach (var (expected, actual) in activity.Links.Zip(span.Links))
            {
                Assert.Equal(expected.Context.TraceId.ToHexString(), actual.TraceId);
                Assert.Equal(expected.Context.SpanId.ToHexString(), actual.SpanId);
                Assert.Equal(expected.Context.TraceState, actual.TraceState);
                AssertAttributes(expected.Tags ?? [], actual.Attributes);
            }

            Assert.Equal(activity.Events.Count(), span.Events.Count);
            foreach (var (expected, actual) in activity.Events.Zip(span.Events))
            {
                Assert.Equal(expected.Name, actual.Name);
                Assert.Equal(expected.Timestamp, actual.Time);
                AssertAttributes(expected.Tags, actual.Attributes);
            }

            Assert.Equal(activity.Status == ActivityStatusCode.Error ? 2 : activity.Status == ActivityStatusCode.Ok ? 1 : 0, span.StatusCode);
            Assert.Equal(activity.StatusDescription, span.StatusMessage);
            Assert.Equal("otlp-decoder-test", span.ServiceName);
            Assert.Equal("1.2.3", span.Resource["service.version"]);
            Assert.Equal("eu-test-1", span.Resource["deployment.region"]);
            Assert.Equal(sourceName, span.ScopeName);
            Assert.Equal("4.5.6", span.ScopeVersion);
        }

        // The values as typed, not only as text.
        var decodedRoot = receiver.Spans.Single(s => s.Kind == OtlpSpanKind.Server);
        Assert.Equal(202L, decodedRoot.Attributes["http.response.status_code"]);
        Assert.Equal(0.25, decodedRoot.Attributes["duration.ratio"]);
        Assert.Equal(false, decodedRoot.Attributes["retried"]);
        Assert.Equal(["a", "b"], (IReadOnlyList<object?>)decodedRoot.Attributes["tags"]!);
        Assert.Equal([1L, -2L, long.MaxValue], (IReadOnlyList<object?>)decodedRoot.Attributes["numbers"]!);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", receiver.Spans.Single(s => s.Kind == OtlpSpanKind.Consumer).TraceId);
        Assert.Equal("b7ad6b7169203331", receiver.Spans.Single(s => s.Kind == OtlpSpanKind.Consumer).ParentSpanId);
        Assert.Equal(3, receiver.Trace(decodedRoot.TraceId).Count);
    }

    [Fact]
    public async Task A_gzip_encoded_export_decodes_the_same_as_the_plain_one()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var sourceName = $"otlp-gzip-test-{Guid.NewGuid():N}";
        using var source = new ActivitySource(sourceName);
        using (var provider = TracerProvider(receiver, sourceName))
        {
            using (var parent = source.StartActivity("create book-orders", ActivityKind.Producer)!)
            {
                parent.SetTag("cloudevents.event_id", "evt-1");
                using var child = source.StartActivity("process book-orders", ActivityKind.Consumer)!;
                child.SetTag("messaging.kafka.offset", 7L);
            }

            provider.ForceFlush();
        }

        Assert.True(await Poll.UntilAsync(() => receiver.Spans.Count == 2, Deadline), "two spans received");
        var plain = receiver.Spans;
        // The simple processor sends one request per span: each is sent again, gzip-encoded.
        await using var second = await OtlpReceiver.StartAsync();
        using var http = new HttpClient();
        foreach (var request in receiver.TraceRequests)
        {
            using var compressed = new MemoryStream();
            await using (var gzip = new GZipStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                await gzip.WriteAsync(request);
            }

            using var content = new ByteArrayContent(compressed.ToArray());
            content.Headers.ContentType = new MediaTypeHeaderValue(OtlpReceiver.ProtobufContentType);
            content.Headers.ContentEncoding.Add("gzip");
            using var response = await http.PostAsync(new Uri(second.Endpoint, "v1/traces"), content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Empty(second.Problems);
        Assert.Equal(plain.Select(Describe), second.Spans.Select(Describe));
    }

    [Fact]
    public async Task Metrics_and_logs_exports_are_accepted_with_an_empty_protobuf_response_and_decoded()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var meterName = $"otlp-metrics-test-{Guid.NewGuid():N}";
        var resource = ResourceBuilder.CreateEmpty().AddService("otlp-decoder-test", autoGenerateServiceInstanceId: false);
        using (var meter = new Meter(meterName))
        using (var meters = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(meterName)
            .AddOtlpExporter(o => Configure(o, receiver, "v1/metrics"))
            .Build())
        {
            meter.CreateCounter<long>("bookstore.test.events", unit: "{event}").Add(3);
            meters.ForceFlush();
        }

        var sourceName = $"otlp-logs-test-{Guid.NewGuid():N}";
        using var source = new ActivitySource(sourceName);
        using var listener = new ActivityListener { ShouldListenTo = s => s.Name == sourceName, Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded };
        ActivitySource.AddActivityListener(listener);
        string traceId, spanId;
        using (var loggers = LoggerFactory.Create(logging => logging.AddOpenTelemetry(o =>
        {
            o.SetResourceBuilder(resource);
            o.AddOtlpExporter(e => Configure(e, receiver, "v1/logs"));
        })))
        {
            using (var activity = source.StartActivity("work")!)
            {
                (traceId, spanId) = (activity.TraceId.ToHexString(), activity.SpanId.ToHexString());
                loggers.CreateLogger("decoder").LogWarning("a log record inside a span");
            }
        }

        Assert.True(await Poll.UntilAsync(() => receiver.Requests("metrics") > 0 && receiver.Requests("logs") > 0, Deadline), "a metrics and a logs export received");
        Assert.Empty(receiver.Problems);
        Assert.Contains(new OtlpMetric("otlp-decoder-test", meterName, "bookstore.test.events", "{event}"), receiver.Metrics);
        var log = Assert.Single(receiver.Logs);
        Assert.Equal(("otlp-decoder-test", traceId, spanId), (log.ServiceName, log.TraceId, log.SpanId));
        Assert.Equal(13, log.SeverityNumber); // SEVERITY_NUMBER_WARN
        Assert.Equal("a log record inside a span", log.Body);

        // The answer is an empty Export*ServiceResponse, as protobuf, for each signal.
        using var http = new HttpClient();
        foreach (var signal in new[] { "v1/traces", "v1/metrics", "v1/logs" })
        {
            using var content = new ByteArrayContent([]);
            content.Headers.ContentType = new MediaTypeHeaderValue(OtlpReceiver.ProtobufContentType);
            using var response = await http.PostAsync(new Uri(receiver.Endpoint, signal), content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(OtlpReceiver.ProtobufContentType, response.Content.Headers.ContentType?.MediaType);
            Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task A_request_it_cannot_read_is_refused_and_reported()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using var http = new HttpClient();

        using var json = new StringContent("{\"resourceSpans\":[]}", System.Text.Encoding.UTF8, "application/json");
        using var jsonResponse = await http.PostAsync(new Uri(receiver.Endpoint, "v1/traces"), json);
        using var truncated = new ByteArrayContent([0x0A, 0x05, 0x0A]);
        truncated.Headers.ContentType = new MediaTypeHeaderValue(OtlpReceiver.ProtobufContentType);
        using var truncatedResponse = await http.PostAsync(new Uri(receiver.Endpoint, "v1/traces"), truncated);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, jsonResponse.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, truncatedResponse.StatusCode);
        Assert.Equal(2, receiver.Problems.Count);
        Assert.Empty(receiver.Spans);
        Assert.Equal(0, receiver.Requests("traces"));
    }

    private static TracerProvider TracerProvider(OtlpReceiver receiver, string sourceName) =>
        Sdk.CreateTracerProviderBuilder()
            .AddSource(sourceName)
            .SetSampler(new AlwaysOnSampler())
            .SetResourceBuilder(ResourceBuilder.CreateEmpty()
                .AddService("otlp-decoder-test", serviceVersion: "1.2.3", autoGenerateServiceInstanceId: false)
                .AddAttributes([new KeyValuePair<string, object>("deployment.region", "eu-test-1")]))
            .AddOtlpExporter(o =>
            {
                Configure(o, receiver, "v1/traces");
                o.ExportProcessorType = ExportProcessorType.Simple;
            })
            .Build()!;

    // Set in code, the endpoint of OTLP/HTTP is the signal's full URL (the variables give the base).
    private static void Configure(OtlpExporterOptions options, OtlpReceiver receiver, string signalPath)
    {
        options.Endpoint = new Uri(receiver.Endpoint, signalPath);
        options.Protocol = OtlpExportProtocol.HttpProtobuf;
    }

    private static void AssertAttributes(IEnumerable<KeyValuePair<string, object?>> expected, IReadOnlyDictionary<string, object?> actual)
    {
        var wanted = expected.ToDictionary(t => t.Key, t => OtlpDecoder.Format(Normalize(t.Value)));
        Assert.Equal(wanted.OrderBy(t => t.Key, StringComparer.Ordinal), actual.ToDictionary(t => t.Key, t => OtlpDecoder.Format(t.Value)).OrderBy(t => t.Key, StringComparer.Ordinal));
    }

    // What OTLP carries: integers as int64, arrays as arrays of values.
    private static object? Normalize(object? value) => value switch
    {
        int i => (long)i,
        string s => s,
        System.Collections.IEnumerable list => list.Cast<object?>().Select(Normalize).ToList(),
        _ => value,
    };

    private static string Describe(OtlpSpan span) =>
        $"{span} {span.Start:O} {span.End:O} [{string.Join(", ", span.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key}={OtlpDecoder.Format(a.Value)}"))}] {span.ScopeName}";
}
