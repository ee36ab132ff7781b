using System.Net.Http.Json;

namespace Bookstore.Analytics.Dashboard;

public sealed record BurstProgress(int Requested, int Accepted, int Failed, bool Running, string? LastError);

/// <summary>The dashboard's "burst" button: N real orders through the Order Service's HTTP API,
/// a few at a time, one burst at a time, in the background.</summary>
public sealed class OrderBurst(IHttpClientFactory clients, IHostApplicationLifetime lifetime)
{
    public const string OrdersClient = "orders";
    private const int Concurrency = 8;
    private readonly Lock _lock = new();
    private BurstProgress? _progress;

    public BurstProgress? Progress
    {
        get
        {
            lock (_lock)
            {
                return _progress;
            }
        }
    }

    /// <summary>Starts a burst; null when one is running.</summary>
    public BurstProgress? TryStart(int orders, IReadOnlyList<string> isbns)
    {
        lock (_lock)
        {
            if (_progress is { Running: true })
            {
                return null;
            }

            _progress = new BurstProgress(orders, 0, 0, true, null);
        }

        _ = Task.Run(() => RunAsync(orders, isbns, lifetime.ApplicationStopping));
        return Progress;
    }

    private async Task RunAsync(int orders, IReadOnlyList<string> isbns, CancellationToken cancellationToken)
    {
        var client = clients.CreateClient(OrdersClient);
        var next = -1;
        async Task Worker()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < orders && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    using var response = await PlaceAsync(client, $"burst-{i % 50}", isbns[Random.Shared.Next(isbns.Count)], 1, cancellationToken);
                    Update(response.IsSuccessStatusCode, response.IsSuccessStatusCode ? null : $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                {
                    Update(false, e.Message); // refused, or timed out
                }
            }
        }

        try
        {
            await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(_ => Worker()));
        }
        finally
        {
            lock (_lock)
            {
                _progress = _progress! with { Running = false };
            }
        }
    }

    /// <summary>POST /orders on the Order Service: one line, as a customer would send it.</summary>
    public static Task<HttpResponseMessage> PlaceAsync(HttpClient orders, string customerId, string? isbn, int quantity, CancellationToken cancellationToken) =>
        orders.PostAsJsonAsync("/orders", new { customerId, lines = new[] { new { isbn, quantity } } }, cancellationToken);

    private void Update(bool accepted, string? error)
    {
        lock (_lock)
        {
            _progress = accepted
                ? _progress! with { Accepted = _progress.Accepted + 1 }
                : _progress! with { Failed = _progress.Failed + 1, LastError = error };
        }
    }
}
