using Bookstore.Messaging.Consuming;
using Bookstore.Messaging.Outbox;
using Bookstore.Messaging.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Bookstore.Messaging;

public static class MessagingExtensions
{
    /// <summary>The service's database, its one producer, the outbox relay and, when
    /// <paramref name="consumers"/> registers handlers, its consumer group; with readiness checks for
    /// Kafka and the database.</summary>
    /// <param name="schema">The service's own tables (<c>CREATE TABLE IF NOT EXISTS …</c>).</param>
    public static MessagingOptions AddMessaging(this WebApplicationBuilder builder, string serviceName, string schema, Action<ConsumerRegistration>? consumers = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new MessagingOptions();
        builder.Configuration.GetSection(MessagingOptions.Section).Bind(options);
        options.ServiceName = string.IsNullOrEmpty(options.ServiceName) ? serviceName : options.ServiceName;
        options.PostgresConnectionString ??= builder.Configuration.GetConnectionString("Postgres");
        if (string.IsNullOrEmpty(options.DatabasePath))
        {
            // ./bookstore up, compose and Kubernetes all set Messaging:DatabasePath; a service started by hand keeps its data beside itself.
            options.DatabasePath = Path.Combine(AppContext.BaseDirectory, "data", $"{options.Namespace}{serviceName}.db");
        }

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(_ => ServiceDatabase.Open(options, schema));
        services.AddSingleton<KafkaProducer>();
        services.AddSingleton<OutboxSignal>();
        services.AddSingleton<Outbox.Outbox>();
        services.AddMetrics();
        services.TryAddSingleton<Telemetry.MessagingMetrics>();
        services.AddSingleton<OutboxRelay>();
        services.AddHostedService(sp => sp.GetRequiredService<OutboxRelay>());
        services.AddSingleton<KafkaHealthCheck>();
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database")
            .AddCheck<KafkaHealthCheck>("kafka");

        if (consumers is not null)
        {
            var registration = new ConsumerRegistration();
            consumers(registration);
            services.AddConsumer(registration);
            services.AddHostedService(sp => sp.GetRequiredService<ConsumerHost>());
            services.AddHostedService(sp => sp.GetRequiredService<Pruner>());
        }

        return options;
    }

    /// <summary>The consumer side of a service, registered but not hosted: its handlers and prune
    /// steps, the batch processor, the consumer host and the pruner. <see cref="AddMessaging"/> hosts
    /// them; the bench starts a consumer host of its own.</summary>
    public static IServiceCollection AddConsumer(this IServiceCollection services, ConsumerRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        services.AddSingleton(registration);
        foreach (var handler in registration.HandlerTypes)
        {
            services.TryAddSingleton(handler);
        }

        foreach (var step in registration.PruneStepTypes)
        {
            services.AddSingleton(typeof(IPruneStep), step);
        }

        services.AddSingleton<Pruner>();
        services.AddMetrics();
        services.TryAddSingleton<Telemetry.MessagingMetrics>();
        services.AddSingleton<BatchProcessor>();
        services.AddSingleton<ConsumerHost>();
        return services;
    }
}

internal sealed class DatabaseHealthCheck(ServiceDatabase database) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            await command.ExecuteScalarAsync(cancellationToken);
            return HealthCheckResult.Healthy($"{database.Backend}: {database.Location}");
        }
        catch (System.Data.Common.DbException e)
        {
            return HealthCheckResult.Unhealthy($"{database.Backend}: {database.Location}: {e.Message}");
        }
    }
}

/// <summary>Ready when a broker answers a metadata request (every Kafka version has it).</summary>
internal sealed class KafkaHealthCheck(KafkaProducer producer) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var brokers = producer.CountBrokers(TimeSpan.FromSeconds(2));
            return Task.FromResult(HealthCheckResult.Healthy($"{brokers} broker(s)"));
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"Kafka unreachable: {e.Error.Reason}"));
        }
    }
}
