using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Bookstore.LocalKafka;

namespace Bookstore.UnitTests;

/// <summary>The deployment files checked as a cluster and <c>docker compose</c> would check them:
/// <c>deploy/validate/validate.mjs</c> (Node, with the validators pinned in its package-lock.json)
/// validates every Kubernetes object against its schema (core kinds: kubernetes-models; Strimzi
/// 1.2.0, KEDA 2.20.2 and CloudNativePG 1.30.0: their CRDs' closed openAPIV3Schema and CEL rules,
/// from <c>../shared/schemas</c>), the restricted Pod Security Standard, claims and the
/// kustomization, and the compose files against the compose specification. The broken fixtures
/// prove that each check rejects what it should.</summary>
public sealed class DeploymentSchemaTests(DeploymentValidatorRun run) : IClassFixture<DeploymentValidatorRun>
{
    [DeploymentSchemaFact]
    public void Deployment_files_pass_their_schemas_and_policies()
    {
        var result = run.RealFiles;
        var errors = result.ErrorMessages;

        Assert.True(errors.Count == 0,
            $"validate.mjs found {errors.Count} error(s) in the deployment files:\n{string.Join('\n', errors)}\n(run: node deploy/validate/validate.mjs)");
        Assert.Contains(result.Units, u => u.Unit == "docker-compose.kafka.yml");
        Assert.Contains(result.Units, u => u.Unit.StartsWith("deploy/k8s/", StringComparison.Ordinal) && u.Objects > 0);
    }

    [DeploymentSchemaTheory]
    [MemberData(nameof(ValidFixtures))]
    public void Valid_fixture_passes(string fixture)
    {
        var unit = run.Fixture(Path.Combine(DeploymentValidatorRun.Valid, fixture));

        Assert.Empty(unit.Findings.Where(f => f.Severity == "error").Select(f => f.ToString()));
    }

    [DeploymentSchemaTheory]
    [MemberData(nameof(BrokenFixtures))]
    public void Broken_fixture_is_rejected(string fixture)
    {
        var path = Path.Combine(DeploymentValidatorRun.Broken, fixture);
        var unit = run.Fixture(path);
        var errors = unit.Findings.Where(f => f.Severity == "error").Select(f => f.ToString()).ToList();
        var expected = ExpectedErrors(path);

        Assert.NotEmpty(expected);
        Assert.NotEmpty(errors);
        Assert.All(expected, e => Assert.True(errors.Any(x => x.Contains(e, StringComparison.Ordinal)),
            $"expected an error containing \"{e}\"; got:\n{string.Join('\n', errors)}"));
    }

    public static TheoryData<string> ValidFixtures() => Units(DeploymentValidatorRun.Valid);

    public static TheoryData<string> BrokenFixtures() => Units(DeploymentValidatorRun.Broken);

    private static TheoryData<string> Units(string folder)
    {
        var data = new TheoryData<string>();
        foreach (var unit in DeploymentValidatorRun.UnitsIn(folder))
        {
            data.Add(Path.GetFileName(unit));
        }

        return data;
    }

    // "# expect: TEXT" lines of a fixture (every YAML file of a folder fixture): each TEXT must be
    // part of an error the validator reports.
    private static List<string> ExpectedErrors(string path)
    {
        const string Marker = "# expect:";
        var files = Directory.Exists(path) ? Directory.GetFiles(path) : [path];
        return files.SelectMany(File.ReadAllLines)
            .Where(l => l.StartsWith(Marker, StringComparison.Ordinal))
            .Select(l => l[Marker.Length..].Trim())
            .ToList();
    }
}

/// <summary>Runs the validator once for the whole class: on the repository's deployment files, and
/// on every fixture (each its own unit), installing its pinned packages first (<c>npm ci</c>) when
/// <c>node_modules</c> is missing or older than the lock file.</summary>
public sealed class DeploymentValidatorRun
{
    public static readonly string Root = RepositoryRoot.Find();
    public static readonly string Tool = Path.Combine(Root, "deploy", "validate");
    public static readonly string Valid = Path.Combine(Tool, "fixtures");
    public static readonly string Broken = Path.Combine(Tool, "fixtures", "broken");
    public static readonly string Schemas = Path.GetFullPath(Path.Combine(Root, "..", "shared", "schemas"));

    private const string FixturesPrefix = "deploy/validate/fixtures/";

    // One run for all (loading and compiling the CRD schemas is most of its time).
    private readonly Lazy<ValidationResult> all = new(() => Validate([.. UnitsIn(Valid).Concat(UnitsIn(Broken))]));

    /// <summary>The repository's deployment files.</summary>
    public ValidationResult RealFiles => all.Value with { Units = [.. all.Value.Units.Where(u => !u.Unit.StartsWith(FixturesPrefix, StringComparison.Ordinal))] };

    public UnitResult Fixture(string path)
    {
        var relative = Path.GetRelativePath(Root, path).Replace('\\', '/');
        return all.Value.Units.SingleOrDefault(u => u.Unit == relative)
            ?? throw new InvalidOperationException($"the validator reported nothing for {relative}");
    }

    /// <summary>The fixture units of a folder: its files and folders, except the folder of broken
    /// ones (under fixtures/: valid, valid-compose; under fixtures/broken: one per case).</summary>
    public static IEnumerable<string> UnitsIn(string folder) =>
        Directory.EnumerateFileSystemEntries(folder)
            .Where(p => Directory.Exists(p) ? !string.Equals(Path.GetFullPath(p), Broken, StringComparison.Ordinal) : p.EndsWith(".yaml", StringComparison.Ordinal) || p.EndsWith(".yml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    private static void InstallPackages()
    {
        var marker = Path.Combine(Tool, "node_modules", ".package-lock.json");
        var lockFile = Path.Combine(Tool, "package-lock.json");
        if (File.Exists(marker) && File.GetLastWriteTimeUtc(marker) >= File.GetLastWriteTimeUtc(lockFile))
        {
            return;
        }

        var (code, output, errors) = Run("npm", Tool, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], TimeSpan.FromMinutes(5));
        if (code != 0)
        {
            throw new InvalidOperationException($"npm ci in deploy/validate failed ({code}):\n{output}\n{errors}");
        }
    }

    private static ValidationResult Validate(IReadOnlyList<string> units)
    {
        InstallPackages();
        var (code, output, errors) = Run("node", Root, [Path.Combine(Tool, "validate.mjs"), "--json", "--repository", "--root", Root, "--schemas", Schemas, .. units], TimeSpan.FromMinutes(2));
        if (code is not (0 or 1))
        {
            throw new InvalidOperationException($"validate.mjs could not run ({code}):\n{output}\n{errors}");
        }

        var report = JsonSerializer.Deserialize<ValidationReport>(output, JsonOptions)
            ?? throw new InvalidOperationException($"validate.mjs wrote no report:\n{output}\n{errors}");
        return new ValidationResult(code, report.Results);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNameCaseInsensitive = true };

    private static (int Code, string Output, string Errors) Run(string program, string directory, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} took longer than {timeout}");
        }

        process.WaitForExit();
        return (process.ExitCode, stdout.ToString(), stderr.ToString());
    }
}

public sealed record ValidationReport(IReadOnlyList<UnitResult> Results);

public sealed record ValidationResult(int ExitCode, IReadOnlyList<UnitResult> Units)
{
    public IReadOnlyList<string> ErrorMessages =>
        [.. Units.SelectMany(u => u.Findings).Where(f => f.Severity == "error").Select(f => f.ToString())];
}

public sealed record UnitResult(string Unit, int Objects, IReadOnlyList<Finding> Findings);

public sealed record Finding(string Severity, string File, string Where, string Message)
{
    public override string ToString() => $"{File}: {(Where.Length > 0 ? Where + ": " : string.Empty)}{Message}";
}

/// <summary>A test of the deployment files against the operators' schemas, which CI finds in
/// <c>../shared/schemas</c> beside the clone: elsewhere it is skipped, saying why.</summary>
public sealed class DeploymentSchemaFactAttribute : FactAttribute
{
    public DeploymentSchemaFactAttribute()
    {
        if (DeploymentSchemaSkip.Reason() is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <inheritdoc cref="DeploymentSchemaFactAttribute"/>
public sealed class DeploymentSchemaTheoryAttribute : TheoryAttribute
{
    public DeploymentSchemaTheoryAttribute()
    {
        if (DeploymentSchemaSkip.Reason() is { } reason)
        {
            Skip = reason;
        }
    }
}

internal static class DeploymentSchemaSkip
{
    public static string? Reason() => Directory.Exists(DeploymentValidatorRun.Schemas)
        ? null
        : $"the CRD schemas are not at {DeploymentValidatorRun.Schemas} (CI has ../shared/schemas beside the clone; " +
          "by hand: node deploy/validate/validate.mjs --schemas DIR)";
}
