using Confluent.Kafka;

namespace Bookstore.Messaging;

/// <summary>How the suite's clients authenticate to the brokers and verify them: configuration
/// <c>Messaging:SecurityProtocol</c>, <c>SaslMechanism</c>, <c>SaslUsername</c>,
/// <c>SaslPassword</c> and <c>SslCaLocation</c>. The password never appears in
/// <see cref="ToString"/> nor in an error message.</summary>
/// <param name="Protocol">Plaintext (the default), SaslPlaintext, SaslSsl or Ssl.</param>
/// <param name="Mechanism">ScramSha512 (the default under SASL), ScramSha256 or Plain.</param>
/// <param name="CaLocation">A PEM file of the CA that signed the brokers' certificates (SSL only);
/// unset, the system's trust store.</param>
public sealed record KafkaSecurity(
    SecurityProtocol Protocol = SecurityProtocol.Plaintext,
    SaslMechanism? Mechanism = null,
    string? Username = null,
    string? Password = null,
    string? CaLocation = null)
{
    private static readonly SaslMechanism[] SupportedMechanisms = [SaslMechanism.ScramSha512, SaslMechanism.ScramSha256, SaslMechanism.Plain];

    public static KafkaSecurity Plaintext { get; } = new();

    public bool UsesSasl => Protocol is SecurityProtocol.SaslPlaintext or SecurityProtocol.SaslSsl;

    public bool UsesSsl => Protocol is SecurityProtocol.Ssl or SecurityProtocol.SaslSsl;

    /// <summary>From configuration text: accepts the enum names (<c>SaslSsl</c>, <c>ScramSha512</c>)
    /// and Kafka's own spellings (<c>SASL_SSL</c>, <c>SCRAM-SHA-512</c>), in any case.</summary>
    public static KafkaSecurity Parse(string? protocol, string? mechanism, string? username, string? password, string? caLocation) =>
        new(
            string.IsNullOrWhiteSpace(protocol) ? SecurityProtocol.Plaintext : ParseName<SecurityProtocol>(protocol, "Messaging:SecurityProtocol"),
            string.IsNullOrWhiteSpace(mechanism) ? null : ParseName<SaslMechanism>(mechanism, "Messaging:SaslMechanism"),
            Blank(username) ? null : username,
            Blank(password) ? null : password,
            Blank(caLocation) ? null : caLocation);

    /// <summary>The same settings from the environment (<c>Messaging__SecurityProtocol</c> …), for
    /// the tools that know a cluster from <c>KAFKA_BOOTSTRAP_SERVERS</c> alone.</summary>
    public static KafkaSecurity FromEnvironment() =>
        Parse(
            Environment.GetEnvironmentVariable("Messaging__SecurityProtocol"),
            Environment.GetEnvironmentVariable("Messaging__SaslMechanism"),
            Environment.GetEnvironmentVariable("Messaging__SaslUsername"),
            Environment.GetEnvironmentVariable("Messaging__SaslPassword"),
            Environment.GetEnvironmentVariable("Messaging__SslCaLocation"));

    /// <summary>Sets the client's security properties; a plaintext connection leaves them unset,
    /// so its configuration is what it always was.</summary>
    internal void ApplyTo(ClientConfig config, bool legacyBroker)
    {
        Validate(legacyBroker);
        if (Protocol == SecurityProtocol.Plaintext)
        {
            return;
        }

        config.SecurityProtocol = Protocol;
        if (UsesSasl)
        {
            config.SaslMechanism = Mechanism ?? SaslMechanism.ScramSha512;
            config.SaslUsername = Username;
            config.SaslPassword = Password;
        }

        if (CaLocation is not null)
        {
            config.SslCaLocation = CaLocation;
        }
    }

    /// <summary>Refuses settings that would be ignored or could not work, rather than letting the
    /// client fail later with a broker's terse error (or connect unauthenticated).</summary>
    public void Validate(bool legacyBroker = false)
    {
        if (UsesSasl)
        {
            if (Mechanism is { } mechanism && !SupportedMechanisms.Contains(mechanism))
            {
                throw new InvalidOperationException($"Messaging:SaslMechanism {mechanism} is not supported; use {string.Join(", ", SupportedMechanisms)}.");
            }

            if (Username is null || Password is null)
            {
                throw new InvalidOperationException($"Messaging:SecurityProtocol {Protocol} needs Messaging:SaslUsername and Messaging:SaslPassword.");
            }

            // 0.9 knows only Kerberos (GSSAPI); PLAIN came with 0.10, SCRAM with 0.10.2.
            if (legacyBroker)
            {
                throw new InvalidOperationException($"SASL/{Mechanism ?? SaslMechanism.ScramSha512} needs Kafka 0.10.2 or later; a 0.9 broker offers only plaintext or SSL.");
            }
        }
        else if (Mechanism is not null || Username is not null || Password is not null)
        {
            throw new InvalidOperationException($"Messaging:SaslMechanism, SaslUsername and SaslPassword apply only to Messaging:SecurityProtocol SaslPlaintext or SaslSsl, not {Protocol}.");
        }

        if (CaLocation is not null && !UsesSsl)
        {
            throw new InvalidOperationException($"Messaging:SslCaLocation applies only to Messaging:SecurityProtocol Ssl or SaslSsl, not {Protocol}.");
        }
    }

    /// <summary>Without the password, for logs and messages.</summary>
    public override string ToString() =>
        UsesSasl ? $"{Protocol} ({Mechanism ?? SaslMechanism.ScramSha512} as {Username})" : Protocol.ToString();

    private static bool Blank(string? value) => string.IsNullOrWhiteSpace(value);

    private static T ParseName<T>(string text, string setting)
        where T : struct, Enum
    {
        var name = text.Trim().Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal);
        // Enum.TryParse also takes digits ("1"), which no one means.
        if (!name.All(char.IsLetterOrDigit) || name.All(char.IsDigit) || !Enum.TryParse<T>(name, ignoreCase: true, out var value) || !Enum.IsDefined(value))
        {
            throw new InvalidOperationException($"{setting} '{text.Trim()}' is not one of {string.Join(", ", Enum.GetNames<T>())}.");
        }

        return value;
    }
}
