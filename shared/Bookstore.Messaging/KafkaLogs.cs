using Confluent.Kafka;

namespace Bookstore.Messaging;

/// <summary>librdkafka's own log lines, minus the ones that are expected by design.</summary>
public static class KafkaLogs
{
    /// <summary>librdkafka 2.x warns on every client that the legacy-broker settings are deprecated.
    /// They are set only for a 0.9 broker (see <see cref="KafkaConnection.ApplyTo{T}"/>), where they
    /// are required, so the warning says nothing new.</summary>
    public static bool IsExpected(LogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message.Facility == "CONFWARN"
            && (message.Message.Contains("api.version.request", StringComparison.Ordinal)
                || message.Message.Contains("broker.version.fallback", StringComparison.Ordinal));
    }

    public static Microsoft.Extensions.Logging.LogLevel LevelOf(LogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message.Level switch
        {
            SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => Microsoft.Extensions.Logging.LogLevel.Critical,
            SyslogLevel.Error => Microsoft.Extensions.Logging.LogLevel.Error,
            SyslogLevel.Warning => Microsoft.Extensions.Logging.LogLevel.Warning,
            SyslogLevel.Notice or SyslogLevel.Info => Microsoft.Extensions.Logging.LogLevel.Information,
            _ => Microsoft.Extensions.Logging.LogLevel.Debug,
        };
    }

    /// <summary>A log handler that forwards what is not expected to <paramref name="logger"/>; with
    /// <paramref name="verbose"/> (debug contexts asked for), at Information so that it shows.</summary>
    public static Action<TClient, LogMessage> ToLogger<TClient>(Microsoft.Extensions.Logging.ILogger logger, bool verbose = false) =>
        (_, message) =>
        {
            if (!IsExpected(message))
            {
                Microsoft.Extensions.Logging.LoggerExtensions.Log(
                    logger,
                    verbose ? Microsoft.Extensions.Logging.LogLevel.Information : LevelOf(message),
                    "librdkafka {Facility}: {Message}",
                    message.Facility,
                    message.Message);
            }
        };

    /// <summary>A log handler that writes what is not expected to standard error, as librdkafka would.</summary>
    public static void ToStandardError<TClient>(TClient client, LogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!IsExpected(message))
        {
            Console.Error.WriteLine($"%{(int)message.Level}|{message.Facility}|{message.Name}| {message.Message}");
        }
    }
}
