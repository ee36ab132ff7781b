using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.LocalKafka;
using Bookstore.Messaging;
using Bookstore.Messaging.Events;
using Confluent.Kafka;

namespace Bookstore.Cli;

/// <summary><c>./bookstore load</c>: real HTTP orders, followed to their terminal state by reading
/// <c>book-orders</c> (the OrderConfirmed / OrderCancelled events), with throughput and latency.</summary>
internal static class LoadCommand
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var orders = new Option<int>("--orders") { Description = "how many orders", DefaultValueFactory = _ => 1000 };
        var rate = new Option<int?>("--rate") { Description = "orders per second (default: as fast as the concurrency allows)" };
        var concurrency = new Option<int>("--concurrency") { Description = "requests in flight at most", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "print the result as JSON" };
        var deadline = new Option<int>("--deadline") { Description = "seconds to wait for every order to be terminal", DefaultValueFactory = _ => 180 };
        var restock = new Option<bool>("--restock") { Description = "top up the books the load orders first, so orders are confirmed rather than out of stock" };
        var analytics = new Option<string>("--analytics") { Description = "the Analytics Service, asked once the orders are terminal where their time went (per hop and step)", DefaultValueFactory = _ => JourneyReport.DefaultAnalytics.ToString() };
        var rates = new Option<string?>("--rates") { Description = "a sweep instead of one run: orders per second, comma-separated (e.g. 100,200,500,1000), each for --step-seconds; prints the throughput/latency curve and where it saturates" };
        var stepSeconds = new Option<int>("--step-seconds") { Description = "how long each rate of a sweep places orders", DefaultValueFactory = _ => 20 };
        var load = new Command("load", "Place orders over HTTP and measure until every one is Confirmed or Cancelled: throughput, latency, CPU per order, then where the time went.") { orders, rate, concurrency, json, deadline, restock, analytics, rates, stepSeconds };
        load.SetAction((parse, ct) => CommandRunner.Run(async () =>
        {
            var count = parse.GetValue(orders);
            var inFlight = parse.GetValue(concurrency);
            if (count is < 1 or > 1_000_000 || inFlight is < 1 or > 1024 || parse.GetValue(rate) is < 1 || parse.GetValue(stepSeconds) is < 1 or > 3600)
            {
                throw new LocalKafkaException("--orders 1..1000000, --concurrency 1..1024, --rate at least 1, --step-seconds 1..3600.");
            }

            if (parse.GetValue(rates) is { } sweep)
            {
                await SweepAsync(ParseRates(sweep), parse.GetValue(stepSeconds), inFlight, TimeSpan.FromSeconds(parse.GetValue(deadline)), parse.GetValue(restock), parse.GetValue(json), ct);
                return;
            }

            var result = await RunAsync(count, parse.GetValue(rate), inFlight, TimeSpan.FromSeconds(parse.GetValue(deadline)), parse.GetValue(restock), !parse.GetValue(json) && !Console.IsOutputRedirected, ct);
            result = await WithJourneysAsync(result, new Uri(parse.GetValue(analytics)!), ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, Json));
            }
            else
            {
                Print(result);
            }

            if (result.Lost + result.Stuck + result.Errors > 0)
            {
                throw new LocalKafkaException($"{result.Lost} lost, {result.Stuck} stuck, {result.Errors} failed requests.");
            }
        }));
        return load;
    }

    private static List<int> ParseRates(string text)
    {
        var rates = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var r) || r is < 1 or > 100_000)
            {
                throw new LocalKafkaException($"--rates: '{part}' is not a rate of 1..100000 orders per second (e.g. --rates 100,200,500).");
            }

            rates.Add(r);
        }

        return rates.Count > 0 ? rates : throw new LocalKafkaException("--rates: give at least one rate (e.g. --rates 100,200,500).");
    }

    /// <summary>One run per rate, each placing rate × seconds orders and waiting for all of them to
    /// be terminal before the next: the throughput/latency curve, and where the suite stops keeping up.</summary>
    private static async Task SweepAsync(IReadOnlyList<int> rates, int seconds, int concurrency, TimeSpan deadline, bool restock, bool json, CancellationToken cancellationToken)
    {
        var steps = new List<SweepStep>();
        foreach (var r in rates)
        {
            if (!json)
            {
                Console.WriteLine($"  {r} orders/s for {seconds} s …");
            }

            var result = await RunAsync(r * seconds, r, concurrency, deadline, restock, progress: false, cancellationToken);
            steps.Add(new SweepStep(r, result));
        }

        var sweep = new SweepResult(steps, steps.Where(s => s.Saturated).Select(s => (double?)s.Result.TerminalPerSecond).Max());
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(sweep, Json));
        }
        else
        {
            Console.WriteLine();
            Console.WriteLine($"  {"offered/s",9} {"terminal/s",10} {"p50 ms",8} {"p90 ms",8} {"p99 ms",8} {"cpu ms/order",12}  outcomes");
            foreach (var step in steps)
            {
                var r = step.Result;
                Console.WriteLine($"  {step.Rate,9} {r.TerminalPerSecond,10} {r.TerminalLatencyMs.P50,8} {r.TerminalLatencyMs.P90,8} {r.TerminalLatencyMs.P99,8} {r.CpuMsPerOrder?.Total,12}  {string.Join(", ", r.Outcomes.Select(o => $"{o.Key} {o.Value}"))}{(step.Saturated ? "  (not keeping up)" : string.Empty)}");
            }

            Console.WriteLine(sweep.SaturatesAt is { } at
                ? $"  saturates at ≈ {at} orders/s placed→terminal"
                : $"  kept up with every rate, up to {rates.Max()} orders/s");
        }

        if (steps.Sum(s => s.Result.Lost + s.Result.Stuck + s.Result.Errors) is var bad and > 0)
        {
            throw new LocalKafkaException($"{bad} orders lost, stuck or failed across the sweep.");
        }
    }

    private static async Task<LoadResult> RunAsync(int count, int? rate, int concurrency, TimeSpan deadline, bool restock, bool progress, CancellationToken cancellationToken)
    {
        var root = RepositoryRoot.Find();
        var connection = LocalClusterState.ResolveConnection(root) ?? throw new LocalKafkaException("No Kafka cluster is known: run ./bookstore up.");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromSeconds(30),
        };
        var books = await BooksAsync(http, restock, count, cancellationToken);

        var placed = new ConcurrentDictionary<string, long>();
        var terminal = new ConcurrentDictionary<string, (long At, string Outcome)>();
        var accepted = new ConcurrentBag<double>();
        var errors = new ConcurrentBag<string>();
        using var stopWatching = new CancellationTokenSource();
        using var watcher = StartWatcher(connection, placed, terminal, stopWatching.Token);

        var cpuBefore = SuiteCpu.Read(root);
        var clock = Stopwatch.StartNew();
        var begin = Stopwatch.GetTimestamp();
        var placingFrom = DateTimeOffset.UtcNow;
        var next = 0;
        var sent = 0;
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next) - 1;
                if (i >= count || cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                if (rate is { } r)
                {
                    var due = TimeSpan.FromSeconds((double)i / r) - clock.Elapsed;
                    if (due > TimeSpan.Zero)
                    {
                        await Task.Delay(due, cancellationToken);
                    }
                }

                var start = Stopwatch.GetTimestamp();
                try
                {
                    using var content = new StringContent(OrderBody(i, books), Encoding.UTF8, "application/json");
                    using var response = await http.PostAsync(new Uri("http://127.0.0.1:5100/orders"), content, cancellationToken);
                    if (response.StatusCode != HttpStatusCode.Accepted)
                    {
                        errors.Add($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
                        continue;
                    }

                    var id = (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetString()!;
                    placed[id] = start;
                    accepted.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                catch (HttpRequestException e)
                {
                    errors.Add(e.Message);
                }
                finally
                {
                    Interlocked.Increment(ref sent);
                }
            }
        }, cancellationToken)).ToList();

        var reporter = progress ? Task.Run(() => ProgressAsync(count, () => sent, () => terminal.Count, clock, Task.WhenAll(workers), cancellationToken), cancellationToken) : Task.CompletedTask;
        await Task.WhenAll(workers);
        var placementSeconds = clock.Elapsed.TotalSeconds;
        var placingTo = DateTimeOffset.UtcNow;
        await WaitTerminalAsync(http, placed, terminal, deadline, cancellationToken);
        var cpuAfter = SuiteCpu.Read(root);
        // Only this run's orders: the watcher also sees late outcomes of orders placed before it.
        var ours = terminal.Where(t => placed.ContainsKey(t.Key)).Select(t => t.Value).ToList();
        var lastTerminal = ours.Count == 0 ? Stopwatch.GetTimestamp() : ours.Max(t => t.At);
        await stopWatching.CancelAsync();
        await reporter;
        if (progress)
        {
            Console.WriteLine();
        }

        // What is still not terminal: stuck Pending in the Order Service, or lost (unknown to it).
        var stuck = 0;
        var lost = 0;
        foreach (var id in placed.Keys.Where(id => !terminal.ContainsKey(id)))
        {
            if (await StatusOfAsync(http, id, cancellationToken) is null)
            {
                lost++;
            }
            else
            {
                stuck++;
            }
        }

        var toTerminal = placed.Where(p => terminal.ContainsKey(p.Key)).Select(p => Stopwatch.GetElapsedTime(p.Value, terminal[p.Key].At).TotalMilliseconds).ToList();
        var firstToLast = Stopwatch.GetElapsedTime(begin, lastTerminal).TotalSeconds;
        return new LoadResult(
            count,
            placed.Count,
            ours.Count,
            errors.Count,
            lost,
            stuck,
            Math.Round(placed.Count / placementSeconds, 1),
            Math.Round(ours.Count / Math.Max(firstToLast, 0.001), 1),
            Percentiles.Of([.. accepted]),
            Percentiles.Of(toTerminal),
            ours.GroupBy(t => t.Outcome).OrderByDescending(g => g.Count()).ToDictionary(g => g.Key, g => g.Count()),
            [.. errors.Take(5)])
        {
            PlacedFrom = placingFrom,
            PlacedTo = placingTo,
            CpuMsPerOrder = cpuBefore.ByProcess.Count == 0 ? null : SuiteCpu.PerOrder(cpuBefore, cpuAfter, ours.Count),
        };
    }

    /// <summary>Adds where the time of the run's orders went, per hop and step, from the journeys
    /// Analytics recorded: one aggregate per request over the orders placed during the run (it
    /// samples long runs), asked for a few times at most while Analytics catches up.</summary>
    private static async Task<LoadResult> WithJourneysAsync(LoadResult result, Uri analytics, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = analytics, Timeout = TimeSpan.FromSeconds(60) };
        try
        {
            // A second either side: the orders' OrderPlaced were written by the Order Service, after
            // this process sent them and before it had their 202, on this host's clock.
            var journeys = await JourneyReport.WaitForBreakdownAsync(
                http, result.PlacedFrom.AddSeconds(-1), result.PlacedTo.AddSeconds(1), result.Terminal, TimeSpan.FromSeconds(30), cancellationToken);
            return result with { Journeys = journeys };
        }
        catch (Exception e) when (e is HttpRequestException or JsonException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return result with { JourneysUnavailable = $"the Analytics Service at {analytics} did not answer ({e.Message})" };
        }
    }

    /// <summary>Terminal states come from book-orders as they happen; when that stream goes quiet
    /// with orders outstanding (a broker restarting under the watcher, say), the Order Service is
    /// asked directly, so a slow watcher never reads as lost orders.</summary>
    private static async Task WaitTerminalAsync(HttpClient http, ConcurrentDictionary<string, long> placed, ConcurrentDictionary<string, (long At, string Outcome)> terminal, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var seen = terminal.Count;
        var quietSince = Stopwatch.StartNew();
        while (clock.Elapsed < deadline && !placed.Keys.All(terminal.ContainsKey))
        {
            if (terminal.Count != seen)
            {
                seen = terminal.Count;
                quietSince.Restart();
            }
            else if (quietSince.Elapsed > TimeSpan.FromSeconds(5))
            {
                await Parallel.ForEachAsync(
                    placed.Keys.Where(id => !terminal.ContainsKey(id)).ToList(),
                    new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken },
                    async (id, ct) =>
                    {
                        if (await StatusOfAsync(http, id, ct) is { } status && status != "Pending")
                        {
                            terminal.TryAdd(id, (Stopwatch.GetTimestamp(), status == "Confirmed" ? status : "Cancelled (seen over HTTP)"));
                        }
                    });
                quietSince.Restart();
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>The order's status, or null when the Order Service does not know it.</summary>
    private static async Task<string?> StatusOfAsync(HttpClient http, string id, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:5100/orders/{id}"), cancellationToken);
        return response.StatusCode == HttpStatusCode.NotFound
            ? null
            : (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("status").GetString();
    }

    private static async Task<List<string>> BooksAsync(HttpClient http, bool restock, int count, CancellationToken cancellationToken)
    {
        List<JsonElement> books;
        try
        {
            books = (await http.GetFromJsonAsync<List<JsonElement>>(new Uri("http://127.0.0.1:5200/books"), cancellationToken))!;
        }
        catch (HttpRequestException e)
        {
            throw new LocalKafkaException($"The Inventory Service does not answer ({e.Message}): start the suite with ./bookstore up.", e);
        }

        var all = books.Select(b => b.GetProperty("isbn").GetString()!).ToList();
        if (restock)
        {
            // Every book, whatever earlier runs left of it: a drained store would cancel every order.
            // Restocking is an admin action: the key ./bookstore up generated for this data folder.
            var adminKey = AdminKeyFile.Require(Path.Combine(RepositoryRoot.Find(), ".bookstore"));
            foreach (var isbn in all)
            {
                using var request = new HttpRequestMessage(HttpMethod.Put, new Uri($"http://127.0.0.1:5200/books/{isbn}"))
                {
                    Content = JsonContent.Create(new { restock = Math.Min(10_000, count) }),
                };
                request.Headers.Add("X-Api-Key", adminKey);
                using var response = await http.SendAsync(request, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    throw new LocalKafkaException($"Restocking {isbn}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
                }
            }

            return all;
        }

        var plentiful = books.Where(b => b.GetProperty("stock").GetInt32() >= 50).Select(b => b.GetProperty("isbn").GetString()!).ToList();
        return plentiful.Count > 0 ? plentiful : all;
    }

    private static string OrderBody(int i, List<string> books) =>
        JsonSerializer.Serialize(new { customerId = $"load-{i % 100}", lines = new[] { new { isbn = books[i % books.Count], quantity = 1 } } });

    /// <summary>Reads book-orders from its current end: OrderConfirmed and OrderCancelled mark orders terminal.</summary>
    private static Watcher StartWatcher(KafkaConnection connection, ConcurrentDictionary<string, long> placed, ConcurrentDictionary<string, (long, string)> terminal, CancellationToken stop)
    {
        var consumer = new ConsumerBuilder<string, string>(KafkaClientConfigs.Consumer(connection, "bookstore-load-watcher", "bookstore-load"))
            .SetLogHandler((_, _) => { })
            .Build();
        var partitions = Enumerable.Range(0, Topics.BookOrders.Partitions).Select(p => new TopicPartition(Topics.BookOrders.Name, p)).ToList();
        consumer.Assign(partitions.Select(tp => new TopicPartitionOffset(tp, consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High)));
        var thread = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is not { } result)
                {
                    continue;
                }

                var at = Stopwatch.GetTimestamp();
                try
                {
                    var cloudEvent = EventSerializer.Parse(result.Message.Value);
                    if (cloudEvent.Type == EventCatalog.OrderConfirmed.TypeName)
                    {
                        terminal.TryAdd(result.Message.Key, (at, "Confirmed"));
                    }
                    else if (cloudEvent.Type == EventCatalog.OrderCancelled.TypeName)
                    {
                        var reason = cloudEvent.Data.GetProperty("reason").GetString() ?? string.Empty;
                        terminal.TryAdd(result.Message.Key, (at, $"Cancelled: {Category(reason)}"));
                    }
                }
                catch (PoisonMessageException)
                {
                    // Not ours to judge: the services dead-letter it.
                }
            }
        }) { IsBackground = true, Name = "load-watcher" };
        thread.Start();
        return new Watcher(consumer, thread);
    }

    private static string Category(string reason) =>
        reason.StartsWith("out of stock", StringComparison.Ordinal) ? "out of stock"
        : reason.StartsWith("payment failed", StringComparison.Ordinal) ? "payment failed"
        : reason.StartsWith("timeout", StringComparison.Ordinal) ? "timeout"
        : reason;

    private static async Task ProgressAsync(int count, Func<int> sent, Func<int> done, Stopwatch clock, Task placing, CancellationToken cancellationToken)
    {
        while (done() < count && !cancellationToken.IsCancellationRequested)
        {
            var width = 30;
            var filled = (int)(width * (double)done() / count);
            Console.Write($"\r  [{new string('#', filled)}{new string('.', width - filled)}] placed {sent(),7}/{count}  terminal {done(),7}  {sent() / Math.Max(clock.Elapsed.TotalSeconds, 0.001),7:0}/s ");
            if (placing.IsCompleted && clock.Elapsed > TimeSpan.FromMinutes(10))
            {
                return;
            }

            await Task.Delay(250, cancellationToken);
        }

        Console.Write($"\r  [{new string('#', 30)}] placed {sent(),7}/{count}  terminal {done(),7}                 ");
    }

    private static void Print(LoadResult r)
    {
        Console.WriteLine();
        Console.WriteLine($"  orders:      {r.Requested} requested, {r.Accepted} accepted (202), {r.Terminal} terminal, {r.Errors} failed requests, {r.Lost} lost, {r.Stuck} stuck");
        Console.WriteLine($"  throughput:  {r.AcceptedPerSecond}/s accepted, {r.TerminalPerSecond}/s placed→terminal (first request to last terminal)");
        Console.WriteLine($"  accepted:    {r.AcceptedLatencyMs}");
        Console.WriteLine($"  terminal:    {r.TerminalLatencyMs}");
        Console.WriteLine($"  outcomes:    {string.Join(", ", r.Outcomes.Select(o => $"{o.Key} {o.Value}"))}");
        if (r.CpuMsPerOrder is { } cpu)
        {
            Console.WriteLine($"  cpu/order:   {cpu}");
        }

        foreach (var error in r.SampleErrors)
        {
            Console.WriteLine($"  error:       {error}");
        }

        if (r.Journeys is { } journeys)
        {
            JourneyReport.Print(journeys, Console.Out);
        }
        else if (r.JourneysUnavailable is { } why)
        {
            Console.WriteLine($"  journeys:    none: {why}");
        }
    }

    private sealed class Watcher(IConsumer<string, string> consumer, Thread thread) : IDisposable
    {
        public void Dispose()
        {
            thread.Join(TimeSpan.FromSeconds(2));
            consumer.Close();
            consumer.Dispose();
        }
    }
}

internal sealed record Percentiles(double P50, double P90, double P99, double Max)
{
    public static Percentiles Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return new Percentiles(0, 0, 0, 0);
        }

        var sorted = values.Order().ToArray();
        double At(double q) => Math.Round(sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)], 1);
        return new Percentiles(At(0.50), At(0.90), At(0.99), Math.Round(sorted[^1], 1));
    }

    public override string ToString() => $"p50 {P50} ms, p90 {P90} ms, p99 {P99} ms, max {Max} ms";
}

internal sealed record LoadResult(
    int Requested,
    int Accepted,
    int Terminal,
    int Errors,
    int Lost,
    int Stuck,
    double AcceptedPerSecond,
    double TerminalPerSecond,
    Percentiles AcceptedLatencyMs,
    Percentiles TerminalLatencyMs,
    Dictionary<string, int> Outcomes,
    IReadOnlyList<string> SampleErrors)
{
    /// <summary>When this process began placing orders, on the wall clock Analytics' timestamps use.</summary>
    public DateTimeOffset PlacedFrom { get; init; }

    /// <summary>When the last placement was answered.</summary>
    public DateTimeOffset PlacedTo { get; init; }

    /// <summary>CPU milliseconds per terminal order from the first request to the last terminal
    /// order, per process of the suite (null where there is no <c>/proc</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public CpuPerOrder? CpuMsPerOrder { get; init; }

    /// <summary>Where the time went: per hop and step, percentiles across the run's journeys.</summary>
    public JourneyBreakdownReportView? Journeys { get; init; }

    /// <summary>Why there is no <see cref="Journeys"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? JourneysUnavailable { get; init; }
}

/// <param name="Rate">The offered rate, orders per second.</param>
internal sealed record SweepStep(int Rate, LoadResult Result)
{
    /// <summary>Not keeping up: fewer than 90 % of the offered orders per second reached a terminal state.</summary>
    public bool Saturated => Result.TerminalPerSecond < 0.9 * Rate;
}

/// <param name="SaturatesAt">The highest terminal throughput among the rates it could not keep up with.</param>
internal sealed record SweepResult(IReadOnlyList<SweepStep> Steps, double? SaturatesAt);
