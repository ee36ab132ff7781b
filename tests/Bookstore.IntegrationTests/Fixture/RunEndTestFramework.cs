using System.Reflection;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("Bookstore.IntegrationTests.Fixture.RunEndTestFramework", "Bookstore.IntegrationTests")]

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>xunit 2 with one hook at the end of the run, for what the whole process shares (the
/// PostgreSQL server): xunit 2 has no assembly fixture, and the test host is killed soon after
/// the run ends, so a ProcessExit handler does not get to finish.</summary>
public sealed class RunEndTestFramework(IMessageSink messageSink) : XunitTestFramework(messageSink)
{
    protected override ITestFrameworkExecutor CreateExecutor(AssemblyName assemblyName) =>
        new Executor(assemblyName, SourceInformationProvider, DiagnosticMessageSink);

    private sealed class Executor(AssemblyName assemblyName, ISourceInformationProvider sourceInformationProvider, IMessageSink diagnosticMessageSink)
        : XunitTestFrameworkExecutor(assemblyName, sourceInformationProvider, diagnosticMessageSink)
    {
        protected override async void RunTestCases(IEnumerable<IXunitTestCase> testCases, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        {
            using var runner = new AssemblyRunner(TestAssembly, testCases, DiagnosticMessageSink, executionMessageSink, executionOptions);
            await runner.RunAsync();
        }
    }

    private sealed class AssemblyRunner(ITestAssembly testAssembly, IEnumerable<IXunitTestCase> testCases, IMessageSink diagnosticMessageSink, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        : XunitTestAssemblyRunner(testAssembly, testCases, diagnosticMessageSink, executionMessageSink, executionOptions)
    {
        /// <summary>Before xunit reports the run finished, while the host still waits for it.</summary>
        protected override async Task BeforeTestAssemblyFinishedAsync()
        {
            await PostgresTestServer.EndRunAsync();
            await base.BeforeTestAssemblyFinishedAsync();
        }
    }
}
