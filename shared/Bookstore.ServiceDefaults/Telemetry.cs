using System.Diagnostics;
using Bookstore.Messaging;
using Bookstore.Messaging.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Bookstore.ServiceDefaults;

/// <summary>OpenTelemetry for every service: metrics always (scraped at <c>/metrics</c>; pushed over
/// OTLP too when exporting), traces and logs exported over OTLP only when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Without an exporter, spans are still made, bare
/// (propagation only): events carry a trace id, so logs and an order's journey name it.</summary>
public static class Telemetry
{
    /// <summary>Meters of the suite's own code.</summary>
    public static readonly string[] Meters = [MessagingMetrics.MeterName, "Bookstore.*"];

    /// <summary>Distinct tag sets kept per metric; measurements beyond go to one overflow series.</summary>
    public const int MetricPointsPerStream = 256;

    public static WebApplicationBuilder AddTelemetry(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var exporting = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

        // Every log line names the trace and span it was written in; the JSON console format is
        // Logging:Console:FormatterName=json (Logging__Console__FormatterName=json) away.
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        // Named, or the console logger applies its deprecated options over the formatter's below.
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.FormatterName ??= ConsoleFormatterNames.Simple);
        builder.Services.Configure<SimpleConsoleFormatterOptions>(o =>
        {
            o.IncludeScopes = true;
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Services.Configure<JsonConsoleFormatterOptions>(o =>
        {
            o.IncludeScopes = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffZ";
        });

        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddDetector(services => new ServiceResourceDetector(services.GetService<MessagingOptions>())))
            .WithMetrics(metrics => metrics
                .AddMeter(Meters)
                .AddMeter("System.Runtime")
                // OpenTelemetry allocates every stream's points up front, 2,000 by default: about
                // 150 KB per instrument, 7 MB per service. The suite's widest stream has a few dozen.
                .AddView(_ => new MetricStreamConfiguration { CardinalityLimit = MetricPointsPerStream })
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddPrometheusExporter());

        if (exporting)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(MessagingTelemetry.SourceName, MessagingTelemetry.RelaySourceName)
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsInfrastructure(context.Request.Path))
                .AddHttpClientInstrumentation());
            builder.Logging.AddOpenTelemetry(o =>
            {
                o.IncludeScopes = true;
                o.IncludeFormattedMessage = true;
            });
            telemetry.UseOtlpExporter();
        }
        else
        {
            builder.Services.AddSingleton<PropagationOnly>();
            builder.Services.AddHostedService(services => services.GetRequiredService<PropagationOnly>());
        }

        return builder;
    }

    /// <summary><c>/metrics</c>: what Prometheus scrapes.</summary>
    public static WebApplication MapMetrics(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapPrometheusScrapingEndpoint().ExcludeFromDescription();
        return app;
    }

    private static bool IsInfrastructure(PathString path) =>
        path.StartsWithSegments("/metrics") || path.StartsWithSegments("/health");

    /// <summary><c>service.name</c> is the service's own (order-service …) unless OTEL_SERVICE_NAME
    /// says otherwise; each process is an instance.</summary>
    private sealed class ServiceResourceDetector(MessagingOptions? options) : IResourceDetector
    {
        public Resource Detect()
        {
            var attributes = new Dictionary<string, object>
            {
                ["service.instance.id"] = $"{Environment.MachineName}:{Environment.ProcessId}",
            };
            if (options is not null && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME")))
            {
                attributes["service.name"] = options.ServiceName;
                attributes["service.namespace"] = "bookstore";
            }

            return new Resource(attributes);
        }
    }

    /// <summary>With nothing exported, spans of the suite and of ASP.NET Core are still created, but
    /// as ids only (no tags, no timing kept): the trace context still reaches every event and log line.</summary>
    private sealed class PropagationOnly : Microsoft.Extensions.Hosting.IHostedService, IDisposable
    {
        private readonly ActivityListener _listener = new()
        {
            ShouldListenTo = source => source.Name is MessagingTelemetry.SourceName or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.PropagationData,
        };

        public Task StartAsync(CancellationToken cancellationToken)
        {
            ActivitySource.AddActivityListener(_listener);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose() => _listener.Dispose();
    }
}
