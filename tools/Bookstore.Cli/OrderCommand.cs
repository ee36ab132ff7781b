using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Bookstore.LocalKafka;

namespace Bookstore.Cli;

/// <summary><c>./bookstore order</c>: places an order and follows it through the saga.</summary>
internal static class OrderCommand
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    // Analytics reads every topic behind the services: it has the order's last events moments later.
    private static readonly TimeSpan JourneyDeadline = TimeSpan.FromSeconds(15);

    public static Command Create()
    {
        var isbn = new Option<string>("--isbn") { Description = "the book (GET http://127.0.0.1:5200/books lists them)", Required = true };
        var quantity = new Option<int>("--qty") { Description = "how many, 1 to 100", DefaultValueFactory = _ => 1 };
        var customer = new Option<string>("--customer") { Description = "the customer id", DefaultValueFactory = _ => "demo-customer" };
        var url = new Option<string>("--url") { Description = "the Order Service", DefaultValueFactory = _ => "http://127.0.0.1:5100" };
        var analytics = new Option<string>("--analytics") { Description = "the Analytics Service, which tells the order's journey", DefaultValueFactory = _ => JourneyReport.DefaultAnalytics.ToString() };
        var order = new Command("order", "Place an order, follow it to Confirmed or Cancelled step by step, then show how long each hop of its journey took.") { isbn, quantity, customer, url, analytics };
        order.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var id = await FollowAsync(new Uri(parse.GetValue(url)!), parse.GetValue(customer)!, parse.GetValue(isbn)!, parse.GetValue(quantity), ct);
            await PrintJourneyAsync(new Uri(parse.GetValue(analytics)!), id, ct);
        }));
        return order;
    }

    /// <summary>Places the order and prints each step of its history until it is terminal; returns its id.</summary>
    private static async Task<string> FollowAsync(Uri orders, string customer, string isbn, int quantity, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = orders, Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsJsonAsync("/orders", new { customerId = customer, lines = new[] { new { isbn, quantity } } }, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new LocalKafkaException($"The Order Service at {orders} does not answer ({e.Message}): start the suite with ./bookstore up.", e);
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new LocalKafkaException($"The order was refused ({(int)response.StatusCode}): {body}");
        }

        var id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        Console.WriteLine($"placed {id} ({quantity} × {isbn} for {customer}): 202 Accepted, {response.Headers.Location}");
        var shown = 0;
        while (clock.Elapsed < Deadline)
        {
            using var current = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/orders/{id}", UriKind.Relative), cancellationToken));
            var history = current.RootElement.GetProperty("history").EnumerateArray().ToList();
            foreach (var step in history.Skip(shown))
            {
                var where = step.GetProperty("topic").ValueKind == JsonValueKind.String
                    ? $"  via {step.GetProperty("topic").GetString()}/{step.GetProperty("partition").GetInt32()}@{step.GetProperty("offset").GetInt64()}"
                    : string.Empty;
                var detail = step.GetProperty("detail").GetString();
                Console.WriteLine($"  +{clock.Elapsed.TotalMilliseconds,6:0} ms  {step.GetProperty("service").GetString(),-18} {step.GetProperty("step").GetString()}{(detail is null ? string.Empty : $": {detail}")}{where}");
            }

            shown = history.Count;
            var status = current.RootElement.GetProperty("status").GetString();
            if (status != "Pending")
            {
                Console.WriteLine($"{id}: {status}{(current.RootElement.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String ? $" ({reason.GetString()})" : string.Empty)} after {clock.Elapsed.TotalMilliseconds:0} ms");
                return id;
            }

            await Task.Delay(50, cancellationToken);
        }

        throw new LocalKafkaException($"{id} is still Pending after {Deadline.TotalSeconds} s: see ./bookstore status and ./bookstore logs.");
    }

    /// <summary>The order's journey as Analytics recorded it: per hop, how long each step took. The
    /// order is decided already, so an Analytics that does not answer is said, not an error.</summary>
    private static async Task PrintJourneyAsync(Uri analytics, string id, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = analytics, Timeout = TimeSpan.FromSeconds(10) };
        Console.WriteLine();
        try
        {
            if (await JourneyReport.WaitForJourneyAsync(http, id, JourneyDeadline, cancellationToken) is { } journey)
            {
                JourneyReport.Print(journey, Console.Out);
            }
            else
            {
                Console.WriteLine($"journey of {id}: Analytics has recorded none of its events after {JourneyDeadline.TotalSeconds} s (see ./bookstore status for its lag)");
            }
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            Console.WriteLine($"journey of {id}: the Analytics Service at {analytics} does not answer ({e.Message})");
        }
    }
}
