using System.Globalization;

namespace Bookstore.LocalKafka;

/// <summary>The server programs of Debian's <c>postgresql</c> package
/// (<c>/usr/lib/postgresql/&lt;major&gt;/bin</c>): the version that created the data folder, else
/// the highest installed.</summary>
internal sealed record PostgresBinaries(string Version, string Directory)
{
    private const string Root = "/usr/lib/postgresql";

    public string InitDb => Path.Combine(Directory, "initdb");

    public string PgCtl => Path.Combine(Directory, "pg_ctl");

    public static PostgresBinaries Find(string dataDirectory)
    {
        var versionFile = Path.Combine(dataDirectory, "PG_VERSION");
        if (File.Exists(versionFile))
        {
            // A data folder is readable only by the major version that wrote it.
            var version = File.ReadAllText(versionFile).Trim();
            return Installed().FirstOrDefault(b => b.Version == version) ?? throw new LocalKafkaException(
                $"{dataDirectory} was created by PostgreSQL {version}, whose server is not installed here. " +
                $"Install it (sudo apt-get install -y postgresql-{version}), or start over with ./bookstore db down --purge.");
        }

        return Installed().FirstOrDefault() ?? throw new LocalKafkaException(
            $"PostgreSQL is not installed (no {Root}/<version>/bin/initdb). Install the server: sudo apt-get install -y postgresql " +
            "(./bookstore db runs a server of its own from those binaries; the package's own cluster on port 5432 is not used).");
    }

    /// <summary>Highest major version first.</summary>
    private static IEnumerable<PostgresBinaries> Installed() =>
        !System.IO.Directory.Exists(Root)
            ? []
            : System.IO.Directory.EnumerateDirectories(Root)
                .Select(dir => (Dir: dir, Major: int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var major) ? major : -1))
                .Where(x => x.Major > 0 && File.Exists(Path.Combine(x.Dir, "bin", "initdb")) && File.Exists(Path.Combine(x.Dir, "bin", "pg_ctl")))
                .OrderByDescending(x => x.Major)
                .Select(x => new PostgresBinaries(x.Major.ToString(CultureInfo.InvariantCulture), Path.Combine(x.Dir, "bin")));
}
