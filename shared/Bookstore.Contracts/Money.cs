namespace Bookstore.Contracts;

/// <summary>Prices are stored as whole cents: exact, and an integer column in every database.</summary>
public static class Money
{
    public static long ToCents(decimal amount) => (long)decimal.Round(amount * 100m, 0, MidpointRounding.AwayFromZero);

    public static decimal FromCents(long cents) => cents / 100m;
}
