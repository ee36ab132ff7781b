using Bookstore.Contracts;
using Bookstore.Contracts.Events;
using Bookstore.Messaging.Storage;
using Dapper;
using System.Data.Common;

namespace Bookstore.Inventory.Data;

public sealed record Book(string Isbn, string Title, string Author, decimal Price, int Stock, int Reserved);

/// <summary>Stock and reservations. <c>stock</c> is what can still be sold, <c>reserved</c> what
/// orders hold until their payment settles; the CHECKs make overselling impossible even by mistake.</summary>
public static class InventoryStore
{
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS books (
            isbn TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            author TEXT NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0),
            stock INTEGER NOT NULL CHECK (stock >= 0),
            reserved INTEGER NOT NULL CHECK (reserved >= 0)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS reservations (
            order_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            lines TEXT NOT NULL,
            updated_at TEXT NOT NULL) WITHOUT ROWID;
        """;

    private const string SelectBook = "SELECT isbn AS Isbn, title AS Title, author AS Author, price_cents AS PriceCents, stock AS Stock, reserved AS Reserved FROM books";

    public static async Task<List<Book>> BooksAsync(DbConnection connection, DbTransaction? transaction = null) =>
        [.. (await connection.QueryAsync<BookRow>(SelectBook + " ORDER BY isbn", transaction: transaction)).Select(r => r.ToBook())];

    /// <summary>Every book, unchanged by others until <paramref name="transaction"/> ends: what it
    /// publishes about them is then never overtaken by an older state.</summary>
    public static async Task<List<Book>> BooksLockedAsync(DbTransaction transaction) =>
        [.. (await transaction.Connection!.QueryAsync<BookRow>(SelectBook + " ORDER BY isbn" + SqlDialect.Of(transaction).ForShare, transaction: transaction)).Select(r => r.ToBook())];

    public static async Task<Book?> BookAsync(DbConnection connection, string isbn, DbTransaction? transaction = null) =>
        (await connection.QuerySingleOrDefaultAsync<BookRow>(SelectBook + " WHERE isbn = @isbn", new { isbn }, transaction))?.ToBook();

    public static Task<string?> ReservationStateAsync(DbTransaction transaction, string orderId) =>
        transaction.Connection!.QuerySingleOrDefaultAsync<string?>("SELECT state FROM reservations WHERE order_id = @orderId", new { orderId }, transaction);

    public static Task SetReservationAsync(DbTransaction transaction, string orderId, string state, IReadOnlyList<OrderLine> lines) =>
        transaction.Connection!.ExecuteAsync(
            """
            INSERT INTO reservations (order_id, state, lines, updated_at) VALUES (@orderId, @state, @lines, @at)
            ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
            """,
            new { orderId, state, lines = System.Text.Json.JsonSerializer.Serialize(lines), at = DateTimeOffset.UtcNow.ToString("O") },
            transaction);

    /// <summary>Moves <paramref name="quantity"/> from stock to reserved if that much is there: one
    /// conditional update, so concurrent orders (and instances) can never both take the last copy: on
    /// PostgreSQL the second waits for the first's row lock and then re-checks <c>stock</c>.</summary>
    public static async Task<bool> TryReserveAsync(DbTransaction transaction, string isbn, int quantity) =>
        await transaction.Connection!.ExecuteAsync(
            "UPDATE books SET stock = stock - @quantity, reserved = reserved + @quantity WHERE isbn = @isbn AND stock >= @quantity",
            new { isbn, quantity },
            transaction) == 1;

    /// <summary>Reserved units leave the store: the order was paid.</summary>
    public static Task ConsumeAsync(DbTransaction transaction, IEnumerable<OrderLine> lines) =>
        EachLineAsync(transaction, lines, "UPDATE books SET reserved = reserved - @Quantity WHERE isbn = @Isbn");

    /// <summary>Reserved units go back on sale: the payment failed or the order was cancelled.</summary>
    public static Task ReleaseAsync(DbTransaction transaction, IEnumerable<OrderLine> lines) =>
        EachLineAsync(transaction, lines, "UPDATE books SET reserved = reserved - @Quantity, stock = stock + @Quantity WHERE isbn = @Isbn");

    /// <summary>Sold units come back: a paid order was cancelled after all (and refunded).</summary>
    public static Task ReturnAsync(DbTransaction transaction, IEnumerable<OrderLine> lines) =>
        EachLineAsync(transaction, lines, "UPDATE books SET stock = stock + @Quantity WHERE isbn = @Isbn");

    public static Task<int> UpdateBookAsync(DbTransaction transaction, string isbn, long? priceCents, int restock) =>
        transaction.Connection!.ExecuteAsync(
            "UPDATE books SET price_cents = coalesce(@priceCents, price_cents), stock = stock + @restock WHERE isbn = @isbn",
            new { isbn, priceCents, restock },
            transaction);

    public static async Task SeedAsync(DbTransaction transaction, IEnumerable<Book> books)
    {
        foreach (var book in books)
        {
            await transaction.Connection!.ExecuteAsync(
                "INSERT INTO books (isbn, title, author, price_cents, stock, reserved) VALUES (@Isbn, @Title, @Author, @PriceCents, @Stock, 0) ON CONFLICT DO NOTHING",
                new { book.Isbn, book.Title, book.Author, PriceCents = Money.ToCents(book.Price), book.Stock },
                transaction);
        }
    }

    private static async Task EachLineAsync(DbTransaction transaction, IEnumerable<OrderLine> lines, string sql)
    {
        foreach (var line in lines)
        {
            await transaction.Connection!.ExecuteAsync(sql, line, transaction);
        }
    }

    private sealed record BookRow(string Isbn, string Title, string Author, long PriceCents, long Stock, long Reserved)
    {
        public Book ToBook() => new(Isbn, Title, Author, Money.FromCents(PriceCents), (int)Stock, (int)Reserved);
    }
}
