using System.Diagnostics;

namespace Bookstore.Messaging;

/// <summary>Waits for a state instead of for a fixed time.</summary>
public static class Poll
{
    /// <summary>Evaluates <paramref name="condition"/> every <paramref name="interval"/> until it
    /// holds (true) or <paramref name="timeout"/> passes (false).</summary>
    public static async Task<bool> UntilAsync(
        Func<CancellationToken, Task<bool>> condition,
        TimeSpan timeout,
        TimeSpan? interval = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await condition(cancellationToken))
            {
                return true;
            }

            if (clock.Elapsed >= timeout)
            {
                return false;
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(200), cancellationToken);
        }
    }

    public static Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout, TimeSpan? interval = null, CancellationToken cancellationToken = default) =>
        UntilAsync(_ => Task.FromResult(condition()), timeout, interval, cancellationToken);
}
