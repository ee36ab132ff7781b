using System.Buffers.Binary;
using System.Text;
using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Bookstore.Messaging;

public sealed record GroupStatus(string GroupId, string State, IReadOnlyList<MemberStatus> Members)
{
    public long TotalLag => Members.Sum(m => m.Partitions.Sum(p => p.Lag ?? 0));
}

/// <param name="ClientId">The client id the member chose: <c>service-pid</c> for the suite's services.</param>
public sealed record MemberStatus(string MemberId, string ClientId, string Host, IReadOnlyList<PartitionLag> Partitions)
{
    public bool Idle => Partitions.Count == 0;
}

/// <param name="Committed">The group's committed offset; null when it has committed none.</param>
/// <param name="Lag">End offset minus committed offset (everything, when nothing is committed).</param>
public sealed record PartitionLag(string Topic, int Partition, long? Committed, long End, long? Lag);

/// <summary>Who is in a consumer group, which partitions each member owns, and how far behind it is.
/// Uses only what Kafka 0.9 answers too: ListGroups/DescribeGroups, OffsetFetch and ListOffsets (all
/// verified against the local cluster). A group with no live member is <c>Dead</c> here (0.9 drops it).</summary>
/// <remarks>
/// Never through the admin API's coordinator requests (<c>DescribeConsumerGroupsAsync</c>,
/// <c>ListConsumerGroupOffsetsAsync</c>): when a group's coordinator dies, librdkafka 2.16 may abort
/// the whole process in them (<c>rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0'</c>,
/// librdkafka issue 4605, fix pending in PR 5397). Seen here: the Analytics service died that way
/// when a broker was killed. Instead, members come from the classic group listing
/// (<c>rd_kafka_list_groups</c>) and committed offsets from an idle consumer of the group, which
/// never joins it. While a broker that the metadata still lists is down, the listing answers
/// "partial response" and the caller keeps what it saw last.
/// </remarks>
public sealed class ConsumerGroupInspector(KafkaConnection connection, string clientId) : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private IAdminClient _admin = NewAdminClient(connection, clientId);

    private readonly Dictionary<string, IConsumer<byte[], byte[]>> _offsetReaders = [];

    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    private bool _disposed;

    /// <summary>One look, for a command that asks once.</summary>
    public static async Task<IReadOnlyList<GroupStatus>> DescribeAsync(KafkaConnection connection, IReadOnlyCollection<string> groupIds)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var inspector = new ConsumerGroupInspector(connection, "bookstore-inspector");
        return await inspector.DescribeAsync(groupIds);
    }

    /// <summary>Callers may ask concurrently; they are answered one at a time.</summary>
    /// <param name="groupIds">The groups to describe.</param>
    /// <param name="withLag">False: members and their partitions only (no committed or end offsets,
    /// so <see cref="PartitionLag.Lag"/> is null), and the idle consumer kept per group to read its
    /// offsets is closed: a Kafka client with five threads and its buffers.</param>
    /// <exception cref="KafkaException">A broker did not answer (e.g. one is down and still listed).</exception>
    public async Task<IReadOnlyList<GroupStatus>> DescribeAsync(IReadOnlyCollection<string> groupIds, bool withLag = true)
    {
        ArgumentNullException.ThrowIfNull(groupIds);
        // One look at a time: a failed look replaces the clients, and a client disposed under a
        // request still in flight never completes it (seen: ListOffsetsAsync hung for good) or
        // crashes the process in librdkafka (seen: SIGSEGV in the test host during a broker kill).
        await _oneAtATime.WaitAsync();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!withLag)
            {
                CloseOffsetReaders();
            }

            return await DescribeOnceAsync(groupIds, withLag);
        }
        catch (KafkaException)
        {
            // The classic listing asks every broker the client has ever known, so a dead one fails
            // every later call too. Fresh clients know only what the cluster lists now: once the
            // cluster has dropped the dead broker (its ZooKeeper session expired), the next call works.
            DisposeClients();
            _admin = NewAdminClient(connection, clientId);
            throw;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>How many groups' offset readers are open.</summary>
    internal int OffsetReaders => _offsetReaders.Count;

    private async Task<IReadOnlyList<GroupStatus>> DescribeOnceAsync(IReadOnlyCollection<string> groupIds, bool withLag)
    {
        var described = await Task.Run(() => groupIds.Select(id => (Id: id, Info: ListGroup(id))).ToList());
        var partitions = described
            .SelectMany(g => g.Info?.Members ?? [])
            .SelectMany(m => DecodeAssignment(m.MemberAssignment))
            .Distinct()
            .ToList();
        var ends = partitions.Count == 0 || !withLag
            ? new Dictionary<TopicPartition, long>()
            : (await _admin.ListOffsetsAsync(partitions.Select(tp => new TopicPartitionOffsetSpec { TopicPartition = tp, OffsetSpec = OffsetSpec.Latest() }), new ListOffsetsOptions { RequestTimeout = Timeout }))
                .ResultInfos.ToDictionary(r => r.TopicPartitionOffsetError.TopicPartition, r => r.TopicPartitionOffsetError.Offset.Value);

        var result = new List<GroupStatus>();
        foreach (var (id, info) in described.OrderBy(g => g.Id, StringComparer.Ordinal))
        {
            if (info is null)
            {
                result.Add(new GroupStatus(id, "Dead", []));
                continue;
            }

            var assignments = info.Members.ToDictionary(m => m.MemberId, m => DecodeAssignment(m.MemberAssignment));
            var owned = assignments.Values.SelectMany(a => a).ToList();
            var committed = owned.Count == 0 || !withLag ? [] : await Task.Run(() => Committed(id, owned));
            var members = info.Members
                .Select(m => new MemberStatus(
                    m.MemberId,
                    m.ClientId,
                    m.ClientHost,
                    [.. assignments[m.MemberId]
                        .OrderBy(tp => tp.Topic, StringComparer.Ordinal).ThenBy(tp => tp.Partition.Value)
                        .Select(tp => Lag(tp, committed, ends))]))
                .OrderBy(m => m.ClientId, StringComparer.Ordinal)
                .ToList();
            result.Add(new GroupStatus(id, info.State, members));
        }

        return result;
    }

    public void Dispose()
    {
        // Waits for a look in progress: its clients must outlive its requests.
        _oneAtATime.Wait();
        try
        {
            if (!_disposed)
            {
                _disposed = true;
                DisposeClients();
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private static IAdminClient NewAdminClient(KafkaConnection connection, string clientId) =>
        new AdminClientBuilder(KafkaClientConfigs.Admin(connection, clientId))
            .SetLogHandler((_, _) => { }) // a broker down is reported by the caller, not logged every second
            .Build();

    private void DisposeClients()
    {
        CloseOffsetReaders();
        _admin.Dispose();
    }

    private void CloseOffsetReaders()
    {
        foreach (var reader in _offsetReaders.Values)
        {
            reader.Dispose();
        }

        _offsetReaders.Clear();
    }

#pragma warning disable CS0618 // The classic listing is deprecated, but it is the one without the coordinator-request crash (see remarks).
    private GroupInfo? ListGroup(string groupId) => _admin.ListGroup(groupId, Timeout);
#pragma warning restore CS0618

    private Dictionary<TopicPartition, long> Committed(string groupId, List<TopicPartition> partitions)
    {
        if (!_offsetReaders.TryGetValue(groupId, out var reader))
        {
            // Configured with the group but never subscribed: it reads the group's offsets and never joins it.
            reader = new ConsumerBuilder<byte[], byte[]>(KafkaClientConfigs.Consumer(connection, groupId, $"{clientId}-offsets"))
                .SetLogHandler((_, _) => { })
                .Build();
            _offsetReaders[groupId] = reader;
        }

        try
        {
            return reader.Committed(partitions, Timeout).ToDictionary(p => p.TopicPartition, p => p.Offset.Value);
        }
        catch (KafkaException)
        {
            // Seen here: after its coordinator moved, a reader kept failing until replaced.
            _offsetReaders.Remove(groupId);
            reader.Dispose();
            throw;
        }
    }

    /// <summary>The consumer protocol's assignment: version, then per topic its name and partitions
    /// (then user data, unused here). Empty while the group is rebalancing.</summary>
    internal static IReadOnlyList<TopicPartition> DecodeAssignment(byte[]? assignment)
    {
        if (assignment is not { Length: >= 6 })
        {
            return [];
        }

        var span = assignment.AsSpan();
        var position = 2; // version
        var topics = BinaryPrimitives.ReadInt32BigEndian(span[position..]);
        position += 4;
        var result = new List<TopicPartition>();
        for (var t = 0; t < topics; t++)
        {
            var nameLength = BinaryPrimitives.ReadInt16BigEndian(span[position..]);
            position += 2;
            var topic = Encoding.UTF8.GetString(span.Slice(position, nameLength));
            position += nameLength;
            var count = BinaryPrimitives.ReadInt32BigEndian(span[position..]);
            position += 4;
            for (var p = 0; p < count; p++)
            {
                result.Add(new TopicPartition(topic, BinaryPrimitives.ReadInt32BigEndian(span[position..])));
                position += 4;
            }
        }

        return result;
    }

    private static PartitionLag Lag(TopicPartition partition, Dictionary<TopicPartition, long> committed, Dictionary<TopicPartition, long> ends)
    {
        var end = ends.GetValueOrDefault(partition, -1);
        long? done = committed.TryGetValue(partition, out var c) && c >= 0 ? c : null;
        long? lag = end < 0 ? null : end - (done ?? 0);
        return new PartitionLag(partition.Topic, partition.Partition.Value, done, end, lag);
    }
}
