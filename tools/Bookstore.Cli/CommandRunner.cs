using Bookstore.LocalKafka;

namespace Bookstore.Cli;

internal static class CommandRunner
{
    /// <summary>Turns the failures a user can act on into a message and exit code 1.</summary>
    public static async Task<int> Run(Func<Task> action)
    {
        try
        {
            await action();
            return 0;
        }
        catch (LocalKafkaException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return 1;
        }
        catch (InvalidOperationException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return 1;
        }
    }
}
