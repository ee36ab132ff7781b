using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Bookstore.ServiceDefaults;

/// <summary>What a request's <c>X-Api-Key</c> amounts to against the configured admin key.</summary>
public enum AdminKeyVerdict
{
    Accepted,
    Missing,
    Wrong,

    /// <summary>The service has no admin key: admin endpoints stay shut rather than open.</summary>
    NotConfigured,
}

/// <summary>The key that admin and bulk endpoints (prices, stock, the gateway's behaviour, a replay,
/// a burst of orders) require in the <c>X-Api-Key</c> header. It comes from configuration
/// (<c>Admin:ApiKey</c>, env <c>Admin__ApiKey</c>); <c>./bookstore up</c> generates one per data folder.</summary>
public static class AdminKey
{
    public const string HeaderName = "X-Api-Key";
    public const string ConfigurationKey = "Admin:ApiKey";
    public const string EnvironmentVariable = "Admin__ApiKey";
    internal const string SecuritySchemeName = "AdminApiKey";

    /// <summary>Pure: the verdict for a configured key and the one a request presented.</summary>
    public static AdminKeyVerdict Check(string? configured, string? presented)
    {
        if (string.IsNullOrWhiteSpace(configured))
        {
            return AdminKeyVerdict.NotConfigured;
        }

        if (string.IsNullOrEmpty(presented))
        {
            return AdminKeyVerdict.Missing;
        }

        return Matches(configured, presented) ? AdminKeyVerdict.Accepted : AdminKeyVerdict.Wrong;
    }

    /// <summary>Compares in constant time, whatever the lengths: both sides are hashed first, so
    /// neither the position of the first wrong character nor the key's length shows in the timing.</summary>
    public static bool Matches(string expected, string presented)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(presented);
        return CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(expected)),
            SHA256.HashData(Encoding.UTF8.GetBytes(presented)));
    }

    /// <summary>The verdict for this request, read against the current configuration (a reload applies).</summary>
    public static AdminKeyVerdict Check(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var configured = http.RequestServices.GetRequiredService<IConfiguration>()[ConfigurationKey];
        var presented = http.Request.Headers.TryGetValue(HeaderName, out var values) && values.Count == 1 ? values[0] : null;
        return Check(configured, presented);
    }

    /// <summary>Null when the request carries the admin key; otherwise the problem details to answer
    /// with: 401 for a missing or wrong key (with a <c>WWW-Authenticate</c> hint), 403 when the
    /// service has no key configured. The answer never says anything about the key itself.</summary>
    public static ProblemHttpResult? Refusal(HttpContext http)
    {
        var verdict = Check(http);
        if (verdict == AdminKeyVerdict.Accepted)
        {
            return null;
        }

        if (verdict == AdminKeyVerdict.NotConfigured)
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status403Forbidden,
                title: "Admin endpoints are disabled",
                detail: $"This service has no admin key configured ({ConfigurationKey}, environment variable {EnvironmentVariable}), so its admin endpoints refuse every request.");
        }

        http.Response.Headers.WWWAuthenticate = $"ApiKey header=\"{HeaderName}\"";
        return TypedResults.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: verdict == AdminKeyVerdict.Missing ? "Admin key required" : "Wrong admin key",
            detail: verdict == AdminKeyVerdict.Missing
                ? $"This endpoint needs the admin key in the {HeaderName} header (./bookstore up writes it to .bookstore/admin-key)."
                : $"The {HeaderName} header does not hold this service's admin key.");
    }

    /// <summary>Every endpoint of <paramref name="builder"/> (one endpoint or a route group) answers
    /// only requests that carry the admin key; the OpenAPI document says so (security scheme
    /// <c>X-Api-Key</c>, 401 and 403 responses).</summary>
    public static TBuilder RequireAdminKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter(static async (context, next) => Refusal(context.HttpContext) ?? await next(context));
        builder.WithMetadata(AdminKeyRequired.Instance);
        builder.WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status401Unauthorized, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]));
        builder.WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status403Forbidden, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]));
        return builder;
    }
}

/// <summary>Endpoint metadata: the OpenAPI document marks such an endpoint as needing the admin key.</summary>
public sealed class AdminKeyRequired
{
    public static readonly AdminKeyRequired Instance = new();

    private AdminKeyRequired()
    {
    }
}
