using Bookstore.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults(defaultUrl: "http://127.0.0.1:5500");

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();
