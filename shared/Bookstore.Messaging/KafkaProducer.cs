using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging;

/// <summary>The process's one producer: every record of the service goes through it, so batches
/// fill up and a single connection per broker carries them.</summary>
public sealed class KafkaProducer : IDisposable
{
    public KafkaProducer(MessagingOptions options, ILogger<KafkaProducer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        Producer = new ProducerBuilder<string, string>(KafkaClientConfigs.Producer(options.Connection(), $"{options.ServiceName}-{Environment.ProcessId}"))
            .SetLogHandler(KafkaLogs.ToLogger<IProducer<string, string>>(logger))
            .SetErrorHandler((_, e) => logger.LogWarning("Kafka producer error {Code}: {Reason}", e.Code, e.Reason))
            .Build();
    }

    public IProducer<string, string> Producer { get; }

    public void Dispose()
    {
        Producer.Flush(TimeSpan.FromSeconds(10));
        Producer.Dispose();
    }
}
