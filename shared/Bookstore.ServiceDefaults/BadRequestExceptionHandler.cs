using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Bookstore.ServiceDefaults;

/// <summary>Malformed JSON, a wrong content type, a body over the limit: the client's fault, said as
/// RFC 7807 problem details with the status the framework chose (400, 413, 415) and why.</summary>
internal sealed class BadRequestExceptionHandler(IProblemDetailsService problemDetails) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
        {
            return false;
        }

        httpContext.Response.StatusCode = bad.StatusCode;
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = bad.StatusCode,
                Title = bad.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Request body too large" : "Bad request",
                Detail = bad.StatusCode == StatusCodes.Status413PayloadTooLarge
                    ? $"The body is limited to {ServiceDefaultsExtensions.MaxRequestBodyBytes} bytes."
                    : bad.InnerException is System.Text.Json.JsonException json ? $"The body is not valid JSON for this request: {json.Message}" : bad.Message,
            },
        });
    }
}
