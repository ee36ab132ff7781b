using System.Runtime.InteropServices;

namespace Bookstore.LocalKafka;

internal static partial class UnixUser
{
    public static bool IsRoot => !OperatingSystem.IsWindows() && GetEffectiveUserId() == 0;

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
