using Microsoft.Extensions.Hosting;

namespace Bookstore.Messaging;

/// <summary>A <see cref="BackgroundService"/> whose loop has ended before what it uses is disposed.
/// A host disposed without being stopped first (<c>await using</c> a <c>WebApplication</c>, as
/// tests do) only cancels a background service, then disposes the singletons in reverse order of
/// creation at once: the Kafka client or the database a loop was still using was freed under it
/// (seen under AddressSanitizer: the relay producing on a destroyed librdkafka client, which
/// corrupted glibc's heap). The container disposes a loop before its dependencies, since they were
/// created first, so waiting here for the loop to end keeps them alive while it runs. A host that
/// was stopped finds the loop already ended.</summary>
public abstract class BackgroundLoop : BackgroundService, IAsyncDisposable
{
    /// <summary>As long as the host's own default shutdown timeout: past it, disposal goes on as it
    /// would have without the wait.</summary>
    private static readonly TimeSpan StopPatience = TimeSpan.FromSeconds(30);

    public async ValueTask DisposeAsync()
    {
        using (var patience = new CancellationTokenSource(StopPatience))
        {
            await StopAsync(patience.Token).ConfigureAwait(false);
        }

        Dispose();
        GC.SuppressFinalize(this);
    }
}
