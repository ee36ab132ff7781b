using Bookstore.Messaging.Storage;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Bookstore.Messaging.Outbox;

/// <summary>A row the relay gave up on: kept with the reason, never published.</summary>
public sealed record ParkedRow(long Seq, string EventId, string Topic, string Key, long ValueLength, string Error, DateTimeOffset ParkedAt);

/// <summary>What the outbox holds: rows waiting to be published, and parked rows an operator should look at.</summary>
public sealed record OutboxStatus(long Pending, long Parked, bool RelayActiveHere, IReadOnlyList<ParkedRow> RecentlyParked);

public static class OutboxApi
{
    /// <summary><c>GET /outbox</c>: the service's outbox backlog and its parked rows (newest 20,
    /// without their values), for <c>./bookstore status</c> and the dashboard.</summary>
    public static IEndpointRouteBuilder MapOutboxApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/outbox", GetStatus).WithTags("Outbox").WithSummary("Rows waiting to be published, and rows parked because no broker will ever accept them");
        return app;
    }

    public static async Task<OutboxStatus> ReadStatusAsync(ServiceDatabase database, bool relayActiveHere, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var connection = await database.OpenAsync(cancellationToken);
        var counts = await connection.QuerySingleAsync<(long Pending, long Parked)>(
            "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_parked)");
        var parked = await connection.QueryAsync<ParkedRecord>(
            """
            SELECT seq AS Seq, event_id AS EventId, topic AS Topic, key AS Key, value_bytes AS ValueLength, error AS Error, parked_at AS ParkedAt
            FROM outbox_parked ORDER BY seq DESC LIMIT 20
            """);
        return new OutboxStatus(counts.Pending, counts.Parked, relayActiveHere, [.. parked.Select(p => p.ToParkedRow())]);
    }

    private sealed record ParkedRecord(long Seq, string EventId, string Topic, string Key, long ValueLength, string Error, string ParkedAt)
    {
        public ParkedRow ToParkedRow() => new(Seq, EventId, Topic, Key, ValueLength, Error, DateTimeOffset.Parse(ParkedAt, System.Globalization.CultureInfo.InvariantCulture));
    }

    private static async Task<Ok<OutboxStatus>> GetStatus(ServiceDatabase database, OutboxRelay relay, CancellationToken cancellationToken) =>
        TypedResults.Ok(await ReadStatusAsync(database, relay.IsActive, cancellationToken));
}
