using System.Buffers.Binary;
using System.Text;
using Bookstore.Messaging;

namespace Bookstore.UnitTests;

public sealed class AssignmentDecodingTests
{
    [Fact]
    public void A_members_assignment_is_read_as_its_topics_partitions_and_user_data_is_ignored()
    {
        var bytes = Assignment(("book-orders", [0, 3]), ("payment-results", [5]));

        var partitions = ConsumerGroupInspector.DecodeAssignment(bytes);

        Assert.Equal(["book-orders/0", "book-orders/3", "payment-results/5"], partitions.Select(tp => $"{tp.Topic}/{tp.Partition.Value}"));
    }

    [Fact]
    public void A_member_without_an_assignment_yet_owns_nothing()
    {
        Assert.Empty(ConsumerGroupInspector.DecodeAssignment(null));
        Assert.Empty(ConsumerGroupInspector.DecodeAssignment([]));
    }

    /// <summary>Kafka's consumer protocol, version 0: big-endian, as the group coordinator hands it out.</summary>
    private static byte[] Assignment(params (string Topic, int[] Partitions)[] topics)
    {
        var buffer = new List<byte>();
        void Int16(short v) { var b = new byte[2]; BinaryPrimitives.WriteInt16BigEndian(b, v); buffer.AddRange(b); }
        void Int32(int v) { var b = new byte[4]; BinaryPrimitives.WriteInt32BigEndian(b, v); buffer.AddRange(b); }
        Int16(0);
        Int32(topics.Length);
        foreach (var (topic, partitions) in topics)
        {
            var name = Encoding.UTF8.GetBytes(topic);
            Int16((short)name.Length);
            buffer.AddRange(name);
            Int32(partitions.Length);
            foreach (var p in partitions)
            {
                Int32(p);
            }
        }

        Int32(3); // user data
        buffer.AddRange("abc"u8.ToArray());
        return [.. buffer];
    }
}
