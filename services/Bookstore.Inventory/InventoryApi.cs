using Bookstore.Contracts;
using Bookstore.Inventory.Data;
using Bookstore.Inventory.Handlers;
using Bookstore.Messaging.Storage;
using Bookstore.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;
using System.Data.Common;
using Outbox = Bookstore.Messaging.Outbox.Outbox;

namespace Bookstore.Inventory;

public sealed record BookUpdate(decimal? Price, int? Restock);

public static class InventoryApi
{
    public static IEndpointRouteBuilder MapInventoryApi(this IEndpointRouteBuilder app)
    {
        var books = app.MapGroup("/books").WithTags("Books");
        books.MapGet("/", ListBooks).WithSummary("Every book with its price, stock (still for sale) and reserved units");
        books.MapGet("/{isbn}", GetBook).WithSummary("One book");
        books.MapPut("/{isbn}", UpdateBook).RequireAdminKey().WithSummary("Change the price and/or restock; publishes to book-catalog-updates (admin key)");
        return app;
    }

    private static async Task<Ok<List<Book>>> ListBooks(ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return TypedResults.Ok(await InventoryStore.BooksAsync(connection));
    }

    private static async Task<Results<Ok<Book>, ProblemHttpResult>> GetBook(string isbn, ServiceDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await InventoryStore.BookAsync(connection, isbn) is { } book ? TypedResults.Ok(book) : UnknownBook(isbn);
    }

    private static async Task<Results<Ok<Book>, ValidationProblem, ProblemHttpResult>> UpdateBook(
        string isbn, BookUpdate update, ServiceDatabase database, Outbox outbox, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (update.Price is null && update.Restock is null)
        {
            errors["body"] = ["Give a price, a restock quantity, or both."];
        }

        if (update.Price is { } price && (price <= 0 || price > 10_000 || decimal.Round(price, 2) != price))
        {
            errors["price"] = ["The price is between 0.01 and 10000, in cents at most."];
        }

        if (update.Restock is { } restock && restock is < 1 or > 10_000)
        {
            errors["restock"] = ["Restock between 1 and 10000 units."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var after = await database.WriteAsync(
            async transaction =>
            {
                var before = await InventoryStore.BookAsync(transaction.Connection!, isbn, transaction);
                if (before is null)
                {
                    return null;
                }

                await InventoryStore.UpdateBookAsync(transaction, isbn, update.Price is { } p ? Money.ToCents(p) : null, update.Restock ?? 0);
                var after = (await InventoryStore.BookAsync(transaction.Connection!, isbn, transaction))!;
                if (after.Price != before.Price)
                {
                    await outbox.AddAsync(transaction, CatalogEvents.PriceOf(after));
                }

                if (after.Stock != before.Stock)
                {
                    await outbox.AddAsync(transaction, CatalogEvents.AvailabilityOf(after));
                }

                return after;
            },
            cancellationToken);
        if (after is null)
        {
            return UnknownBook(isbn);
        }

        outbox.Committed();
        return TypedResults.Ok(after);
    }

    private static ProblemHttpResult UnknownBook(string isbn) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown book", detail: $"No book has ISBN {isbn}.");
}
