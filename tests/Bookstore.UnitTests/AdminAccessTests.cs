using Bookstore.Cli;
using Bookstore.Contracts;
using Bookstore.ServiceDefaults;

namespace Bookstore.UnitTests;

/// <summary>The pure pieces of admin access: the key check, the customer id rule, the CLI's key file.</summary>
public sealed class AdminAccessTests
{
    [Theory]
    [InlineData("s3cret-key", "s3cret-key", AdminKeyVerdict.Accepted)]
    [InlineData("s3cret-key", null, AdminKeyVerdict.Missing)]
    [InlineData("s3cret-key", "", AdminKeyVerdict.Missing)]
    [InlineData("s3cret-key", "s3cret-kez", AdminKeyVerdict.Wrong)]
    [InlineData("s3cret-key", "s3cret-key ", AdminKeyVerdict.Wrong)]
    [InlineData("s3cret-key", "s3cret", AdminKeyVerdict.Wrong)]
    [InlineData("s3cret-key", "S3CRET-KEY", AdminKeyVerdict.Wrong)]
    [InlineData(null, "anything", AdminKeyVerdict.NotConfigured)]
    [InlineData("", "", AdminKeyVerdict.NotConfigured)]
    [InlineData("   ", "   ", AdminKeyVerdict.NotConfigured)]
    public void The_admin_key_is_accepted_only_when_configured_and_equal(string? configured, string? presented, AdminKeyVerdict expected) =>
        Assert.Equal(expected, AdminKey.Check(configured, presented));

    [Fact]
    public void Keys_of_any_length_compare_without_throwing()
    {
        Assert.True(AdminKey.Matches(new string('k', 10_000), new string('k', 10_000)));
        Assert.False(AdminKey.Matches("k", new string('k', 10_000)));
        Assert.False(AdminKey.Matches(new string('k', 10_000), "k"));
    }

    [Theory]
    [InlineData("alice")]
    [InlineData("customer-17")]
    [InlineData("load-99")]
    [InlineData("a.b_c-d")]
    [InlineData("0")]
    public void Plain_customer_ids_are_valid(string customerId) => Assert.True(CustomerIds.IsValid(customerId));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("alice\r\nBcc: x@evil")]
    [InlineData("alice\n")] // $ in a .NET regex would let a final line feed through
    [InlineData("alice\r")]
    [InlineData("alice@evil.example")]
    [InlineData("alice,bob")]
    [InlineData("alice bob")]
    [InlineData("<alice>")]
    [InlineData("-alice")]
    [InlineData(".alice")]
    [InlineData("élise")]
    public void Customer_ids_that_could_inject_a_header_or_a_recipient_are_not(string? customerId) =>
        Assert.False(CustomerIds.IsValid(customerId));

    [Fact]
    public void A_customer_id_has_at_most_64_characters()
    {
        Assert.True(CustomerIds.IsValid(new string('a', CustomerIds.MaxLength)));
        Assert.False(CustomerIds.IsValid(new string('a', CustomerIds.MaxLength + 1)));
    }

    [Fact]
    public void The_key_file_is_created_once_owner_only_and_reused()
    {
        var home = Directory.CreateTempSubdirectory("bookstore-admin-key-").FullName;
        try
        {
            var key = AdminKeyFile.LoadOrCreate(Path.Combine(home, ".bookstore"));

            Assert.Matches("^[0-9a-f]{64}$", key);
            var path = AdminKeyFile.PathIn(Path.Combine(home, ".bookstore"));
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            Assert.Equal(key, AdminKeyFile.LoadOrCreate(Path.Combine(home, ".bookstore")));
            Assert.Equal(key, AdminKeyFile.Require(Path.Combine(home, ".bookstore")));
            Assert.NotEqual(key, AdminKeyFile.LoadOrCreate(Path.Combine(home, "another-data-folder")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public void A_key_file_readable_by_others_is_tightened_and_a_missing_one_is_explained()
    {
        var home = Directory.CreateTempSubdirectory("bookstore-admin-key-").FullName;
        try
        {
            var error = Assert.ThrowsAny<Exception>(() => AdminKeyFile.Require(home));
            Assert.Contains("./bookstore up", error.Message, StringComparison.Ordinal);

            File.WriteAllText(AdminKeyFile.PathIn(home), "copied-in-by-hand\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(AdminKeyFile.PathIn(home), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }

            Assert.Equal("copied-in-by-hand", AdminKeyFile.LoadOrCreate(home));
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(AdminKeyFile.PathIn(home)));
            }
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
