using System.Net.Http;
using System.Net.Sockets;
using Bookstore.Messaging;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>Which cluster the tests get: the one named by <c>KAFKA_BOOTSTRAP_SERVERS</c>; else a
/// Testcontainers broker when a Docker engine answers; else this checkout's local cluster.</summary>
public enum TestClusterMode
{
    External,
    Container,
    Local,
}

public static class TestClusterModes
{
    /// <summary>Forces a mode (<c>external</c>, <c>container</c>, <c>local</c>) regardless of what is available.</summary>
    public const string OverrideVariable = "BOOKSTORE_TEST_CLUSTER";

    private static readonly Lazy<TestClusterMode> Detected = new(Detect);

    public static TestClusterMode Current => Detected.Value;

    private static TestClusterMode Detect()
    {
        var forced = Environment.GetEnvironmentVariable(OverrideVariable);
        if (!string.IsNullOrWhiteSpace(forced))
        {
            return Enum.Parse<TestClusterMode>(forced, ignoreCase: true);
        }

        if (KafkaConnectionResolver.FromEnvironment() is not null)
        {
            return TestClusterMode.External;
        }

        return DockerEngineAnswers() ? TestClusterMode.Container : TestClusterMode.Local;
    }

    /// <summary>A Docker client alone is not enough: the engine must answer <c>/_ping</c>.</summary>
    internal static bool DockerEngineAnswers()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        try
        {
            using var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(2) };
            Uri baseAddress;
            if (string.IsNullOrWhiteSpace(host) || host.StartsWith("unix://", StringComparison.Ordinal))
            {
                var socketPath = string.IsNullOrWhiteSpace(host) ? "/var/run/docker.sock" : host["unix://".Length..];
                if (!File.Exists(socketPath))
                {
                    return false;
                }

                handler.ConnectCallback = async (_, ct) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                };
                baseAddress = new Uri("http://docker/");
            }
            else
            {
                baseAddress = new Uri(host.Replace("tcp://", "http://", StringComparison.Ordinal));
            }

            using var client = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(3) };
            return client.GetStringAsync(new Uri("_ping", UriKind.Relative)).GetAwaiter().GetResult() == "OK";
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
