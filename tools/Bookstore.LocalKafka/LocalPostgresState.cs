using System.Text.Json;

namespace Bookstore.LocalKafka;

/// <summary>What <c>./bookstore db up</c> records about the local PostgreSQL server
/// (<c>.bookstore/postgres/state.json</c>, mode 0600: it holds the generated password, which
/// exists nowhere else and never in the repository).</summary>
public sealed record LocalPostgresState(string Host, int Port, string User, string Password, string Version)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string PathFor(string repositoryRoot) =>
        Path.Combine(repositoryRoot, ".bookstore", "postgres", "state.json");

    public static LocalPostgresState? TryRead(string repositoryRoot)
    {
        var path = PathFor(repositoryRoot);
        return File.Exists(path)
            ? JsonSerializer.Deserialize<LocalPostgresState>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path} is empty.")
            : null;
    }

    public void Write(string repositoryRoot)
    {
        var path = PathFor(repositoryRoot);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = path + ".tmp";
        File.Delete(temporary);

        // The mode is set at creation, so the password is never readable by others, not even briefly.
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var file = new FileStream(temporary, options))
        {
            JsonSerializer.Serialize(file, this, Json);
        }

        File.Move(temporary, path, overwrite: true);
    }
}
