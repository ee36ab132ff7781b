using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Bookstore.ServiceDefaults;

/// <summary>The OpenAPI document names the admin key as a security scheme and lists it on every
/// operation marked with <see cref="AdminKey.RequireAdminKey{TBuilder}"/>, so the API page offers a
/// field for it.</summary>
internal static class AdminKeyOpenApi
{
    public static OpenApiOptions AddAdminKeySecurity(this OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[AdminKey.SecuritySchemeName] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = AdminKey.HeaderName,
                Description = "The admin key (configuration Admin:ApiKey; ./bookstore up writes it to .bookstore/admin-key).",
            };
            return Task.CompletedTask;
        });
        options.AddOperationTransformer((operation, context, _) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<AdminKeyRequired>().Any())
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement
                {
                    [new OpenApiSecuritySchemeReference(AdminKey.SecuritySchemeName, context.Document)] = [],
                });
            }

            return Task.CompletedTask;
        });
        return options;
    }
}
