using Bookstore.Messaging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Bookstore.UnitTests;

/// <summary>A host disposed without being stopped (what <c>await using</c> a WebApplication does)
/// must not dispose what a background loop uses while the loop still runs: the relay's Kafka
/// client, freed under it, corrupted the process's heap.</summary>
public sealed class BackgroundLoopTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_host_disposed_without_stopping_disposes_a_loops_dependencies_only_after_the_loop_ended()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<Resource>();
        builder.Services.AddSingleton<LoopUsingTheResource>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LoopUsingTheResource>());
        var host = builder.Build();
        await host.StartAsync();
        var resource = host.Services.GetRequiredService<Resource>();
        var loop = host.Services.GetRequiredService<LoopUsingTheResource>();
        Assert.True(await Poll.UntilAsync(() => loop.Running, Deadline), "the loop started");

        var disposing = ((IAsyncDisposable)host).DisposeAsync().AsTask();
        // Cancelled, the loop still has work to finish with the resource: it waits at the gate.
        Assert.True(await Poll.UntilAsync(() => loop.AtGate, Deadline), "the loop was cancelled");
        Assert.False(resource.Disposed, "the resource was disposed while the loop still ran");

        loop.Gate.SetResult();
        await disposing.WaitAsync(Deadline);
        Assert.True(loop.Ended);
        Assert.False(loop.FoundResourceDisposed);
        Assert.True(resource.Disposed);
    }

    private sealed class Resource : IDisposable
    {
        public volatile bool Disposed;

        public void Dispose() => Disposed = true;
    }

    private sealed class LoopUsingTheResource(Resource resource) : BackgroundLoop
    {
        public readonly TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Running;
        public volatile bool AtGate;
        public volatile bool Ended;
        public volatile bool FoundResourceDisposed;

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            Running = true;
            try
            {
                await Task.Delay(Timeout.Infinite, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                // Like a relay's round in hand, finished after cancellation.
            }

            AtGate = true;
            await Gate.Task;
            FoundResourceDisposed = resource.Disposed;
            Ended = true;
        }
    }
}
