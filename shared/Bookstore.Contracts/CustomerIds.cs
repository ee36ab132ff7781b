using System.Text.RegularExpressions;

namespace Bookstore.Contracts;

/// <summary>What a customer id may look like. It becomes part of an email address
/// (<c>{customerId}@customers.bookstore.local</c>), so it is a short run of letters, digits, dots,
/// underscores and hyphens: no line break, space, <c>@</c>, comma or angle bracket can add a header
/// or a recipient. The Orders API refuses anything else, and the email path checks again, since
/// its events come from Kafka.</summary>
public static partial class CustomerIds
{
    public const int MaxLength = 64;

    public const string Rule = "1 to 64 letters, digits, dots, underscores or hyphens, starting with a letter or digit";

    // \z, not $: $ also matches before a final line feed, which is exactly what must not pass.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    public static bool IsValid(string? customerId) => customerId is not null && Pattern().IsMatch(customerId);
}
