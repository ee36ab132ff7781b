namespace Bookstore.LocalKafka;

/// <summary>A failure the user can act on; its message says what happened and what to do.</summary>
public sealed class LocalKafkaException : Exception
{
    public LocalKafkaException(string message)
        : base(message)
    {
    }

    public LocalKafkaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public LocalKafkaException()
    {
    }
}
