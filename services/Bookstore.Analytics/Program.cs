using Bookstore.Analytics;
using Bookstore.Analytics.Dashboard;
using Bookstore.Analytics.Data;
using Bookstore.Analytics.Journeys;
using Bookstore.Contracts;
using Bookstore.Messaging;
using Bookstore.ServiceDefaults;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync();
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5500");
builder.AddMessaging(ConsumerGroups.Analytics, AnalyticsStore.Schema, consumers => consumers
    .Observe()
    .HandleAll<RecordEvents>([.. Topics.Seed])
    .Prune<AnalyticsFactsPruneStep>());
builder.AddDashboard();
builder.Services.AddSingleton(builder.Configuration.GetSection("Analytics").Get<AnalyticsOptions>() ?? new AnalyticsOptions());

var app = builder.Build();
app.MapDefaultEndpoints(apiPageAtRoot: false);
app.MapDashboard();
app.MapAnalyticsApi();
app.MapJourneyApi();
app.Run();
return 0;
