namespace Bookstore.LocalKafka;

/// <summary>Whether the OS user the server runs as can reach its data folder. As root, PostgreSQL
/// runs as <c>postgres</c>, which needs search (x) permission on every folder above the data: a
/// checkout under a 0700 home folder fails deep inside initdb with a message about the data
/// folder, never naming the folder that blocks. So we name it first.</summary>
public static class PostgresFolderAccess
{
    /// <summary>The first folder, from <c>/</c> down to <paramref name="folder"/> itself, that
    /// <paramref name="canSearch"/> refuses; null when every one lets the user through.</summary>
    public static string? FirstBlockingFolder(string folder, Func<string, bool> canSearch)
    {
        ArgumentNullException.ThrowIfNull(canSearch);
        var chain = new List<string>();
        for (var dir = new DirectoryInfo(Path.GetFullPath(folder)); dir is not null; dir = dir.Parent)
        {
            chain.Add(dir.FullName);
        }

        chain.Reverse();
        return chain.FirstOrDefault(dir => !canSearch(dir));
    }

    /// <summary>What to tell the user when <paramref name="blocking"/> keeps <paramref name="user"/> out.</summary>
    public static string Explain(string blocking, string user, string dataFolder) =>
        $"PostgreSQL refuses to run as root, so it runs as the '{user}' user, which cannot reach {dataFolder}: " +
        $"{blocking} does not let it search (x permission). Either allow it (chmod o+x {blocking}, or a group or ACL " +
        $"that includes '{user}'), or put the checkout in a folder every user can reach (e.g. under /srv or /opt).";
}
