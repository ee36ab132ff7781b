using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Bookstore.LocalKafka;

/// <summary>Asks ZooKeeper through its four-letter-word commands: no ZooKeeper client library needed.</summary>
internal static partial class ZooKeeperProbe
{
    public static async Task<bool> IsServingAsync(int port, CancellationToken cancellationToken) =>
        await AskAsync(port, "ruok", cancellationToken) == "imok";

    /// <summary>The broker ids registered in ZooKeeper, read from the ephemeral nodes that
    /// <c>dump</c> lists: a broker holds <c>/brokers/ids/N</c> exactly while its session lives.</summary>
    public static async Task<IReadOnlySet<int>?> RegisteredBrokersAsync(int port, CancellationToken cancellationToken)
    {
        var dump = await AskAsync(port, "dump", cancellationToken);
        if (dump is null)
        {
            return null;
        }

        return BrokerNode().Matches(dump).Select(m => int.Parse(m.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
    }

    private static async Task<string?> AskAsync(int port, string command, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(command), timeout.Token);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return (await reader.ReadToEndAsync(timeout.Token)).Trim();
        }
        catch (SocketException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    [GeneratedRegex(@"^\s*/brokers/ids/(?<id>\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex BrokerNode();
}
