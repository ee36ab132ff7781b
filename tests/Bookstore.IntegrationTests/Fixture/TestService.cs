using Bookstore.Messaging;
using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Outbox;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>A service host built from the shared messaging library, in this process, on the run's cluster.</summary>
public static class TestService
{
    public static async Task<WebApplication> StartAsync(
        KafkaClusterFixture fixture,
        string serviceName,
        string @namespace,
        TestDatabase database,
        string schema,
        Action<ConsumerRegistration>? consumers,
        Action<WebApplicationBuilder>? configure = null,
        IReadOnlyDictionary<string, string?>? settings = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration["Messaging:Namespace"] = @namespace;
        builder.Configuration["Messaging:BootstrapServers"] = fixture.Connection.BootstrapServers;
        builder.Configuration["Messaging:BrokerVersion"] = fixture.Connection.BrokerVersion;
        foreach (var (key, value) in database.Settings)
        {
            builder.Configuration[key] = value;
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            builder.Configuration[key] = value;
        }

        builder.AddMessaging(serviceName, schema, consumers);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapOutboxApi();
        await app.StartAsync();
        return app;
    }
}
