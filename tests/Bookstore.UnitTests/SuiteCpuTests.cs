using System.Diagnostics;
using Bookstore.Cli;

namespace Bookstore.UnitTests;

/// <summary>How <c>./bookstore load</c> turns two readings of the suite's CPU time into milliseconds per order.</summary>
public sealed class SuiteCpuTests
{
    [Fact]
    public void Cpu_per_order_is_each_process_s_time_over_the_run_divided_by_the_orders_with_the_load_generator_apart()
    {
        var before = new SuiteCpu(
            new Dictionary<string, TimeSpan>
            {
                ["broker-1"] = TimeSpan.FromSeconds(10),
                ["broker-2"] = TimeSpan.FromSeconds(20),
                ["zookeeper"] = TimeSpan.FromSeconds(1),
                ["orders"] = TimeSpan.FromSeconds(5),
                ["orders#2"] = TimeSpan.FromSeconds(3),
                ["analytics"] = TimeSpan.FromSeconds(4),
                ["stopped-during-the-run"] = TimeSpan.FromSeconds(9),
            },
            TimeSpan.FromSeconds(2));
        var after = new SuiteCpu(
            new Dictionary<string, TimeSpan>
            {
                ["broker-1"] = TimeSpan.FromSeconds(12),
                ["broker-2"] = TimeSpan.FromSeconds(21),
                ["zookeeper"] = TimeSpan.FromSeconds(1.01),
                ["orders"] = TimeSpan.FromSeconds(6),
                ["orders#2"] = TimeSpan.FromSeconds(3.5),
                ["analytics"] = TimeSpan.FromSeconds(4.5),
                ["started-during-the-run"] = TimeSpan.FromSeconds(7),
            },
            TimeSpan.FromSeconds(2.4));

        var perOrder = SuiteCpu.PerOrder(before, after, orders: 1000);

        Assert.Equal(["analytics", "broker-1", "broker-2", "orders", "orders#2", "zookeeper"], perOrder.ByProcess.Keys);
        Assert.Equal(2.0, perOrder.ByProcess["broker-1"]);
        Assert.Equal(0.01, perOrder.ByProcess["zookeeper"]);
        Assert.Equal(3.0, perOrder.Brokers);
        Assert.Equal(2.0, perOrder.Services); // orders 1 + orders#2 0.5 + analytics 0.5
        Assert.Equal(5.01, perOrder.Total);
        Assert.Equal(0.4, perOrder.LoadGenerator);
    }

    [Fact]
    public void Reading_the_suite_sees_this_process_s_own_cpu_time_grow_as_the_load_generator_s()
    {
        var root = Directory.CreateTempSubdirectory("suite-cpu-").FullName;
        try
        {
            var before = SuiteCpu.Read(root);
            var clock = Stopwatch.StartNew();
            var spin = 0L;
            while (clock.ElapsedMilliseconds < 200)
            {
                spin++;
            }

            var after = SuiteCpu.Read(root);

            Assert.Empty(after.ByProcess); // nothing of a suite runs from an empty checkout
            Assert.True(spin > 0);
            Assert.True(after.LoadGenerator - before.LoadGenerator >= TimeSpan.FromMilliseconds(50), $"{after.LoadGenerator - before.LoadGenerator} of CPU seen for 200 ms of spinning");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
