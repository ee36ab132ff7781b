using System.Net.Mail;
using Bookstore.Contracts;
using Bookstore.Messaging.Events;

namespace Bookstore.Notifications;

public sealed class SmtpOptions
{
    /// <summary>Unset: emails are only recorded in the database (channel <c>recorded</c>).</summary>
    public string? Host { get; set; }

    public int Port { get; set; } = 25;

    public string From { get; set; } = "bookstore@localhost";
}

/// <summary>Sends through SMTP when one is configured; otherwise the database record is the email.</summary>
public sealed class EmailSender(SmtpOptions options)
{
    public string Channel => options.Host is null ? "recorded" : "smtp";

    public async Task SendAsync(string customerId, string subject, string body, CancellationToken cancellationToken)
    {
        // Checked when the email was recorded (Notify); checked again where the address is built.
        if (!CustomerIds.IsValid(customerId))
        {
            throw new PoisonMessageException($"The customer id is not {CustomerIds.Rule}; no email address is built from it.");
        }

        if (options.Host is null)
        {
            return;
        }

        using var client = new SmtpClient(options.Host, options.Port);
        using var message = new MailMessage(options.From, $"{customerId}@customers.bookstore.local", subject, body);
        await client.SendMailAsync(message, cancellationToken);
    }
}
