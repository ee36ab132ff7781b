using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Bookstore.Messaging;

/// <summary>The process's one producer: every record of the service goes through it, so batches
/// fill up and a single connection per broker carries them.</summary>
public sealed class KafkaProducer : IDisposable
{
    private readonly MessagingOptions _options;
    private readonly ILogger<KafkaProducer> _logger;

    // Confluent.Kafka does not keep a client alive while another thread calls it (a produce passes
    // the bare handle): whatever borrows the client from another thread than the relay's does so
    // under this lock, which Abandon and Dispose take before destroying it.
    private readonly Lock _lifetime = new();
    private volatile IProducer<string, string> _producer;

    public KafkaProducer(MessagingOptions options, ILogger<KafkaProducer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger;
        Capabilities = options.Connection().Capabilities;
        _producer = Build();
    }

    /// <summary>The client, for the relay, which alone calls <see cref="Abandon"/> and ends (see
    /// <see cref="BackgroundLoop"/>) before this is disposed; any other caller uses the methods here.</summary>
    public IProducer<string, string> Producer => _producer;

    /// <summary>What the brokers this producer writes to can do (e.g. whether records may carry headers).</summary>
    public KafkaCapabilities Capabilities { get; }

    /// <summary>Drops what the client still holds (queued, not yet sent) and starts a fresh one:
    /// for a relay that lost its lease, so that a standby is the only one publishing. Requests
    /// already on the wire cannot be recalled (0.9 has no producer fencing); consumers deduplicate.</summary>
    public void Abandon()
    {
        IProducer<string, string> abandoned;
        lock (_lifetime)
        {
            abandoned = _producer;
            _producer = Build();
        }

        // Disposing without a flush destroys the client, and with it whatever it still queues.
        abandoned.Dispose();
    }

    /// <summary>How many brokers a metadata request on this producer's connections finds.</summary>
    /// <exception cref="KafkaException">No broker answered within <paramref name="timeout"/>.</exception>
    public int CountBrokers(TimeSpan timeout)
    {
        lock (_lifetime)
        {
            using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
            return admin.GetMetadata(timeout).Brokers.Count;
        }
    }

    public void Dispose()
    {
        lock (_lifetime)
        {
            _producer.Flush(TimeSpan.FromSeconds(10));
            _producer.Dispose();
        }
    }

    private IProducer<string, string> Build()
    {
        var config = KafkaClientConfigs.Producer(_options.Connection(), $"{_options.ServiceName}-{Environment.ProcessId}");
        foreach (var (name, value) in _options.Producer)
        {
            config.Set(name, value);
        }

        return new ProducerBuilder<string, string>(config)
            .SetLogHandler(KafkaLogs.ToLogger<IProducer<string, string>>(_logger))
            .SetErrorHandler((_, e) => _logger.LogWarning("Kafka producer error {Code}: {Reason}", e.Code, e.Reason))
            .Build();
    }
}
