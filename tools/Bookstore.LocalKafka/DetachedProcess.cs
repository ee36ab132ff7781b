using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Bookstore.LocalKafka;

/// <summary>Starts, finds and stops the processes of the local suite (the cluster's JVMs, the
/// services): detached, so they outlive the command that started them. A process counts as ours
/// only when its command line carries its marker, so a recycled pid is never signalled.</summary>
public static partial class DetachedProcess
{
    private const int SigTerm = 15;
    private const int SigKill = 9;

    /// <summary>Starts <paramref name="program"/> in a session of its own (it outlives the CLI),
    /// with stdin from /dev/null and stdout and stderr appended to <paramref name="logFile"/>, and
    /// records its pid in <paramref name="pidFile"/>.</summary>
    public static int Start(string logFile, string pidFile, string program, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(pidFile)!);
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("log=\"$1\"; shift; exec setsid \"$@\" </dev/null >>\"$log\" 2>&1");
        start.ArgumentList.Add("bookstore");
        start.ArgumentList.Add(logFile);
        start.ArgumentList.Add(program);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start) ?? throw new LocalKafkaException($"{program} did not start.");
        File.WriteAllText(pidFile, process.Id.ToString(CultureInfo.InvariantCulture));
        return process.Id;
    }

    /// <summary>The pid of the live process recorded in <paramref name="pidFile"/> (or, the file
    /// lost, found by its marker), or null.</summary>
    public static int? Find(string pidFile, string marker)
    {
        if (File.Exists(pidFile)
            && int.TryParse(File.ReadAllText(pidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            && IsOurs(pid, marker))
        {
            return pid;
        }

        return FindByMarker(marker).Cast<int?>().FirstOrDefault();
    }

    /// <summary>Every live process whose command line carries the marker (a lost pid file included).</summary>
    public static IEnumerable<int> FindByMarker(string marker)
    {
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && IsOurs(pid, marker))
            {
                yield return pid;
            }
        }
    }

    public static bool IsAlive(int pid) => ReadCommandLine(pid) is not null && !IsZombie(pid);

    public static void Terminate(int pid) => Signal(pid, SigTerm);

    public static void Kill(int pid) => Signal(pid, SigKill);

    /// <summary>Waits for the process to be gone; false when the deadline passed first.</summary>
    public static async Task<bool> WaitForExitAsync(int pid, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (IsAlive(pid))
        {
            if (deadline.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(100, cancellationToken);
        }

        return true;
    }

    /// <summary>SIGTERM, then SIGKILL once <paramref name="grace"/> has passed. True when it exited on its own.</summary>
    public static async Task<bool> StopAsync(int pid, TimeSpan grace, CancellationToken cancellationToken)
    {
        Terminate(pid);
        if (await WaitForExitAsync(pid, grace, cancellationToken))
        {
            return true;
        }

        Kill(pid);
        await WaitForExitAsync(pid, TimeSpan.FromSeconds(10), cancellationToken);
        return false;
    }

    public static bool IsPortFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // As the JVM does: connections of a stopped broker still in TIME_WAIT do not make the port taken.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static string Tail(string file, int lines)
    {
        if (!File.Exists(file))
        {
            return $"({file} does not exist)";
        }

        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var all = reader.ReadToEnd().Split('\n');
        return string.Join('\n', all.TakeLast(lines + 1)).TrimEnd();
    }

    private static bool IsOurs(int pid, string marker) =>
        ReadCommandLine(pid) is { } commandLine && !IsZombie(pid) && commandLine.Split('\0').Contains(marker);

    private static string? ReadCommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces, the state follows the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state is "Z" or "X";
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static void Signal(int pid, int signal)
    {
        if (SendSignal(pid, signal) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            const int NoSuchProcess = 3;
            if (errno != NoSuchProcess)
            {
                throw new LocalKafkaException($"Cannot signal process {pid} (errno {errno}).");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
