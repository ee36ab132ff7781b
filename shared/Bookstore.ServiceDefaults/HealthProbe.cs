namespace Bookstore.ServiceDefaults;

/// <summary><c>dotnet Service.dll probe</c>: asks the running service on this machine whether it is
/// ready, for container health checks (the ASP.NET runtime image has no curl).</summary>
public static class HealthProbe
{
    public static bool IsRequested(string[] args) => args is ["probe", ..];

    public static async Task<int> RunAsync()
    {
        var port = Environment.GetEnvironmentVariable("ASPNETCORE_HTTP_PORTS")?.Split(';', ',')[0] ?? "8080";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        try
        {
            var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/health/ready"));
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (HttpRequestException)
        {
            return 1;
        }
        catch (TaskCanceledException)
        {
            return 1;
        }
    }
}
