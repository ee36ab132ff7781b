namespace Bookstore.LocalKafka;

internal static class JavaRuntime
{
    /// <summary><c>$JAVA_HOME/bin/java</c>, else <c>java</c> on the PATH.</summary>
    public static string Find()
    {
        var javaHome = Environment.GetEnvironmentVariable("JAVA_HOME");
        if (!string.IsNullOrWhiteSpace(javaHome) && File.Exists(Path.Combine(javaHome, "bin", "java")))
        {
            return Path.Combine(javaHome, "bin", "java");
        }

        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "java"))
            .FirstOrDefault(File.Exists);
        return onPath ?? throw new LocalKafkaException(
            "Java is not installed: ZooKeeper and the Kafka brokers run on a JVM (11 or newer). " +
            "Install one (Debian/Ubuntu: sudo apt-get install -y default-jre-headless) or set JAVA_HOME.");
    }
}
