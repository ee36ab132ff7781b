using Bookstore.Messaging.Outbox;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Scalar.AspNetCore;

namespace Bookstore.ServiceDefaults;

/// <summary>What every service shares: loopback binding, problem details, request limits, health
/// endpoints, telemetry (<see cref="Telemetry"/>: traces, metrics at <c>/metrics</c>, trace ids in
/// logs) and the OpenAPI document with a browsable page.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Large enough for an order of 50 lines; anything bigger is refused with 413.</summary>
    public const long MaxRequestBodyBytes = 64 * 1024;

    private const string LiveTag = "live";

    /// <param name="defaultUrl">Where the service listens unless <c>--urls</c>, <c>ASPNETCORE_URLS</c>
    /// or <c>ASPNETCORE_HTTP_PORTS</c> says otherwise: loopback, so nothing is exposed by accident.</param>
    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, string defaultUrl)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
        {
            builder.WebHost.UseUrls(defaultUrl);
        }

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = MaxRequestBodyBytes);
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<BadRequestExceptionHandler>();
        // Binding failures become exceptions, so the handler above can say what was wrong.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddOpenApi(options => options.AddAdminKeySecurity());
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);
        builder.AddTelemetry();
        return builder;
    }

    /// <summary><c>/health/live</c> (the process answers), <c>/health/ready</c> (every check passes),
    /// <c>/openapi/v1.json</c> and the API page at <c>/scalar/v1</c>, where <c>/</c> leads unless
    /// the service has a page of its own there.</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app, bool apiPageAtRoot = true)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = check => check.Tags.Contains(LiveTag) });
        app.MapHealthChecks("/health/ready");
        app.MapMetrics();
        if (app.Services.GetService<OutboxRelay>() is not null)
        {
            app.MapOutboxApi();
        }

        app.MapOpenApi();
        app.MapScalarApiReference();
        if (apiPageAtRoot)
        {
            app.MapGet("/", () => Results.Redirect("/scalar/v1")).ExcludeFromDescription();
        }

        return app;
    }
}
