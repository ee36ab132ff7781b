using Bookstore.LocalKafka;

namespace Bookstore.UnitTests;

public sealed class LocalPostgresConfigTests
{
    [Fact]
    public void The_first_folder_the_server_user_cannot_search_is_named()
    {
        var blocking = PostgresFolderAccess.FirstBlockingFolder("/root/checkout/.bookstore/postgres", dir => dir != "/root");

        Assert.Equal("/root", blocking);
    }

    [Fact]
    public void The_folder_closest_to_the_root_blocks_first()
    {
        var blocking = PostgresFolderAccess.FirstBlockingFolder("/home/alice/src/bookstore", dir => dir is not ("/home/alice" or "/home/alice/src"));

        Assert.Equal("/home/alice", blocking);
    }

    [Fact]
    public void Every_folder_from_the_root_down_to_the_data_is_checked()
    {
        var asked = new List<string>();

        var blocking = PostgresFolderAccess.FirstBlockingFolder("/srv/bookstore/.bookstore/postgres", dir =>
        {
            asked.Add(dir);
            return true;
        });

        Assert.Null(blocking);
        Assert.Equal(["/", "/srv", "/srv/bookstore", "/srv/bookstore/.bookstore", "/srv/bookstore/.bookstore/postgres"], asked);
    }

    [Fact]
    public void The_message_says_which_folder_and_what_to_do()
    {
        var message = PostgresFolderAccess.Explain("/root", "postgres", "/root/checkout/.bookstore/postgres/data");

        Assert.Contains("chmod o+x /root", message, StringComparison.Ordinal);
        Assert.Contains("'postgres'", message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_server_listens_on_loopback_over_tcp_only_never_on_the_package_port()
    {
        var settings = new LocalPostgresServer("/srv/bookstore", LocalPostgresServer.DefaultPort).ServerSettings();

        Assert.Contains("listen_addresses = '127.0.0.1'", settings, StringComparison.Ordinal);
        Assert.Contains("unix_socket_directories = ''", settings, StringComparison.Ordinal);
        Assert.Contains("port = 5433", settings, StringComparison.Ordinal);
        Assert.Contains("fsync = on", settings, StringComparison.Ordinal);
        Assert.NotEqual(5432, LocalPostgresServer.DefaultPort);
    }

    [Fact]
    public void Every_service_and_the_gateway_get_a_database()
    {
        Assert.Equal(
            ["order-service", "inventory-service", "payment-service", "notification-service", "analytics-service", "payment-gateway"],
            LocalPostgresServer.SuiteDatabases);
    }

    [Fact]
    public void Names_are_quoted_as_identifiers()
    {
        Assert.Equal("\"order-service\"", LocalPostgresServer.QuoteIdentifier("order-service"));
        Assert.Equal("\"a\"\"b\"", LocalPostgresServer.QuoteIdentifier("a\"b"));
    }
}
