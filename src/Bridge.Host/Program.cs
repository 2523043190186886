using Bridge.Host.Hosting;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddBridgeHost();

var app = builder.Build();
app.MapBridgeServices();
await app.RunAsync();
