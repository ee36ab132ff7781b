namespace Bookstore.LocalKafka;

/// <summary>The checkout this process runs from: <c>BOOKSTORE_HOME</c>, else the nearest folder
/// above the working directory or the binaries that holds <c>Bookstore.sln</c>.</summary>
public static class RepositoryRoot
{
    public const string Variable = "BOOKSTORE_HOME";
    private const string Marker = "Bookstore.sln";

    public static string? TryFind()
    {
        var configured = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Path.GetFullPath(configured);
        }

        return SearchUpwards(Directory.GetCurrentDirectory()) ?? SearchUpwards(AppContext.BaseDirectory);
    }

    public static string Find() =>
        TryFind() ?? throw new InvalidOperationException(
            $"Cannot find the Bookstore checkout: run from inside it or set {Variable}.");

    private static string? SearchUpwards(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, Marker)))
            {
                return dir.FullName;
            }
        }

        return null;
    }
}
