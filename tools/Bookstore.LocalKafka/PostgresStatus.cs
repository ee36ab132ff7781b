namespace Bookstore.LocalKafka;

/// <summary>The local PostgreSQL server as <c>./bookstore db status</c> shows it.</summary>
public sealed record PostgresStatus(
    bool Running,
    int? Pid,
    int Port,
    string? Version,
    string DataDirectory,
    string StateFile,
    IReadOnlyList<PostgresDatabaseStatus> Databases,
    string? Error);

public sealed record PostgresDatabaseStatus(string Name, long SizeBytes);
