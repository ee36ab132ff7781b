using System.IO.Compression;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>An OTLP/HTTP receiver in the test process (what a collector is to the services): Kestrel
/// on 127.0.0.1 and a free port, taking <c>POST /v1/traces</c>, <c>/v1/metrics</c> and <c>/v1/logs</c>
/// as <c>application/x-protobuf</c> (gzip-encoded when <c>Content-Encoding</c> says so) and answering
/// each with 200 and an empty <c>Export*ServiceResponse</c> (no partial success). What it decodes is
/// kept for the test; a request it cannot read is answered with 400 or 415 and listed in
/// <see cref="Problems"/>.</summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    public const string ProtobufContentType = "application/x-protobuf";

    private readonly Lock _lock = new();
    private readonly List<OtlpSpan> _spans = [];
    private readonly List<OtlpMetric> _metrics = [];
    private readonly List<OtlpLogRecord> _logs = [];
    private readonly List<byte[]> _traceRequests = [];
    private readonly List<string> _problems = [];
    private readonly Dictionary<string, int> _requests = new(StringComparer.Ordinal) { ["traces"] = 0, ["metrics"] = 0, ["logs"] = 0 };
    private WebApplication? _app;

    private OtlpReceiver()
    {
    }

    /// <summary>Where an exporter sends to: <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (the signal paths
    /// <c>/v1/traces</c>, <c>/v1/metrics</c>, <c>/v1/logs</c> are appended by the exporter).</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>Every span received so far, in the order received.</summary>
    public IReadOnlyList<OtlpSpan> Spans
    {
        get
        {
            lock (_lock)
            {
                return [.. _spans];
            }
        }
    }

    public IReadOnlyList<OtlpMetric> Metrics
    {
        get
        {
            lock (_lock)
            {
                return [.. _metrics];
            }
        }
    }

    public IReadOnlyList<OtlpLogRecord> Logs
    {
        get
        {
            lock (_lock)
            {
                return [.. _logs];
            }
        }
    }

    /// <summary>The body of every trace export request, as decoded (after gzip).</summary>
    public IReadOnlyList<byte[]> TraceRequests
    {
        get
        {
            lock (_lock)
            {
                return [.. _traceRequests];
            }
        }
    }

    /// <summary>Requests that were refused, and why.</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (_lock)
            {
                return [.. _problems];
            }
        }
    }

    /// <summary>How many export requests of a signal (<c>traces</c>, <c>metrics</c>, <c>logs</c>) were accepted.</summary>
    public int Requests(string signal)
    {
        lock (_lock)
        {
            return _requests[signal];
        }
    }

    /// <summary>The spans of one trace (lower-case hex id).</summary>
    public IReadOnlyList<OtlpSpan> Trace(string traceId) => [.. Spans.Where(s => string.Equals(s.TraceId, traceId, StringComparison.OrdinalIgnoreCase))];

    /// <summary>The environment that makes a service process export everything here, soon: the
    /// standard OpenTelemetry variables, over OTLP/HTTP with protobuf.</summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment(TimeSpan? exportDelay = null)
    {
        var delay = ((int)(exportDelay ?? TimeSpan.FromMilliseconds(200)).TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint.ToString().TrimEnd('/'),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = delay,
            ["OTEL_BLRP_SCHEDULE_DELAY"] = delay,
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
        };
    }

    public static async Task<OtlpReceiver> StartAsync()
    {
        var receiver = new OtlpReceiver();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapPost("/v1/traces", context => receiver.ReceiveAsync(context, "traces", body =>
        {
            var spans = OtlpDecoder.DecodeTraces(body);
            lock (receiver._lock)
            {
                receiver._traceRequests.Add(body);
                receiver._spans.AddRange(spans);
            }
        }));
        app.MapPost("/v1/metrics", context => receiver.ReceiveAsync(context, "metrics", body =>
        {
            var metrics = OtlpDecoder.DecodeMetrics(body);
            lock (receiver._lock)
            {
                receiver._metrics.AddRange(metrics);
            }
        }));
        app.MapPost("/v1/logs", context => receiver.ReceiveAsync(context, "logs", body =>
        {
            var logs = OtlpDecoder.DecodeLogs(body);
            lock (receiver._lock)
            {
                receiver._logs.AddRange(logs);
            }
        }));
        await app.StartAsync();
        receiver._app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        receiver.Endpoint = new Uri(address.EndsWith('/') ? address : address + "/");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task ReceiveAsync(HttpContext context, string signal, Action<byte[]> decode)
    {
        var contentType = context.Request.ContentType ?? string.Empty;
        if (!contentType.StartsWith(ProtobufContentType, StringComparison.OrdinalIgnoreCase))
        {
            Refuse($"{signal}: content type '{contentType}' (only {ProtobufContentType} is read)");
            context.Response.StatusCode = (int)HttpStatusCode.UnsupportedMediaType;
            return;
        }

        var encoding = context.Request.Headers.ContentEncoding.ToString();
        byte[] body;
        using (var buffer = new MemoryStream())
        {
            if (encoding.Length == 0 || encoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
            {
                await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
            }
            else if (encoding.Equals("gzip", StringComparison.OrdinalIgnoreCase))
            {
                await using var gzip = new GZipStream(context.Request.Body, CompressionMode.Decompress, leaveOpen: true);
                await gzip.CopyToAsync(buffer, context.RequestAborted);
            }
            else
            {
                Refuse($"{signal}: content encoding '{encoding}'");
                context.Response.StatusCode = (int)HttpStatusCode.UnsupportedMediaType;
                return;
            }

            body = buffer.ToArray();
        }

        try
        {
            decode(body);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            Refuse($"{signal}: {e.Message}");
            context.Response.StatusCode = (int)HttpStatusCode.BadRequest;
            return;
        }

        lock (_lock)
        {
            _requests[signal]++;
        }

        // An Export*ServiceResponse with no field set: zero bytes of protobuf, everything accepted.
        context.Response.StatusCode = (int)HttpStatusCode.OK;
        context.Response.ContentType = ProtobufContentType;
        context.Response.ContentLength = 0;
    }

    private void Refuse(string problem)
    {
        lock (_lock)
        {
            _problems.Add(problem);
        }
    }
}
