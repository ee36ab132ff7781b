using System.Globalization;
using System.Text.RegularExpressions;
using Bookstore.Contracts;
using Bookstore.LocalKafka;
using Bookstore.Messaging;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Bookstore.UnitTests;

/// <summary>No Docker engine or Kubernetes cluster runs in CI: the compose file and the manifests
/// are checked by reading them, against the topic table.</summary>
public sealed partial class DeploymentFilesTests
{
    private static readonly string Root = RepositoryRoot.Find();

    [Fact]
    public void Compose_runs_three_kraft_brokers_of_a_pinned_apache_kafka_on_the_seed_ports()
    {
        var services = Map(Compose()["services"]);
        var brokers = services.Where(s => s.Key.StartsWith("kafka-", StringComparison.Ordinal) && Map(s.Value).ContainsKey("hostname")).ToList();

        Assert.Equal(3, brokers.Count);
        var advertised = new List<string>();
        foreach (var (name, value) in brokers)
        {
            var broker = Map(value);
            Assert.Matches(@"^apache/kafka:\d+\.\d+\.\d+$", (string)broker["image"]);
            Assert.True(broker.ContainsKey("healthcheck"), $"{name} has a health check");
            var environment = Map(broker["environment"]);
            Assert.Equal("broker,controller", environment["KAFKA_PROCESS_ROLES"]);
            Assert.Equal("3", environment["KAFKA_DEFAULT_REPLICATION_FACTOR"]);
            Assert.Equal("2", environment["KAFKA_MIN_INSYNC_REPLICAS"]);
            Assert.Equal("3", environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]);
            Assert.Equal("false", environment["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"]);
            Assert.Equal("false", environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]);
            advertised.Add(((string)environment["KAFKA_ADVERTISED_LISTENERS"]).Split(',').Single(l => l.StartsWith("EXTERNAL://", StringComparison.Ordinal)));
            Assert.All(List(broker["ports"]), port => Assert.StartsWith("127.0.0.1:", (string)port, StringComparison.Ordinal));
        }

        Assert.Equal(ClusterLayout.DefaultBrokerPorts.Select(p => $"EXTERNAL://127.0.0.1:{p}"), advertised.Order());
    }

    [Fact]
    public void Compose_creates_exactly_the_topics_of_the_table()
    {
        var command = string.Join('\n', List(Map(Map(Compose()["services"])["kafka-topics"])["command"]).Cast<string>());
        var created = CreateLine().Matches(command)
            .Select(m => new TopicSpec(
                m.Groups["name"].Value,
                int.Parse(m.Groups["partitions"].Value, CultureInfo.InvariantCulture),
                TimeSpan.FromMilliseconds(long.Parse(m.Groups["retention"].Value, CultureInfo.InvariantCulture)),
                Compacted: m.Groups["policy"].Value == "compact"))
            .ToList();

        Assert.Equal(Topics.All.OrderBy(t => t.Name), created.OrderBy(t => t.Name));
        Assert.Contains("--replication-factor 3", command, StringComparison.Ordinal);
        Assert.Contains("min.insync.replicas=2", command, StringComparison.Ordinal);
    }

    [Fact]
    public void Strimzi_topics_match_the_table()
    {
        var topics = Documents("deploy/k8s/kafka-topics.yaml").Where(d => (string)d["kind"] == "KafkaTopic").ToList();

        Assert.Equal(Topics.All.Select(t => t.Name).Order(), topics.Select(t => (string)Map(t["metadata"])["name"]).Order());
        foreach (var topic in topics)
        {
            var declared = Topics.Get((string)Map(topic["metadata"])["name"]);
            var spec = Map(topic["spec"]);
            var config = Map(spec["config"]);
            Assert.Equal(declared.Partitions.ToString(CultureInfo.InvariantCulture), spec["partitions"]);
            Assert.Equal(declared.ReplicationFactor.ToString(CultureInfo.InvariantCulture), spec["replicas"]);
            Assert.Equal(declared.Configs(), config.ToDictionary(kv => kv.Key, kv => (string)kv.Value));
            Assert.Equal("bookstore", Map(Map(topic["metadata"])["labels"])["strimzi.io/cluster"]);
        }
    }

    [Fact]
    public void Strimzi_cluster_runs_kraft_with_no_loss_settings()
    {
        var documents = Documents("deploy/k8s/kafka-cluster.yaml");
        var pool = Map(documents.Single(d => (string)d["kind"] == "KafkaNodePool")["spec"]);
        var kafka = documents.Single(d => (string)d["kind"] == "Kafka");
        var config = Map(Map(Map(kafka["spec"])["kafka"])["config"]);

        Assert.Equal("3", pool["replicas"]);
        Assert.Equal("enabled", Map(Map(kafka["metadata"])["annotations"])["strimzi.io/kraft"]);
        Assert.Equal("3", config["default.replication.factor"]);
        Assert.Equal("2", config["min.insync.replicas"]);
        Assert.Equal("false", config["unclean.leader.election.enable"]);
        Assert.Equal("false", config["auto.create.topics.enable"]);
    }

    private static readonly string[] ServiceNames = ["order-service", "inventory-service", "payment-service", "notification-service", "analytics-service"];

    [Fact]
    public void Compose_runs_the_five_services_from_their_dockerfile_with_health_checks_on_the_cluster()
    {
        var services = Map(Compose()["services"]);
        var brokers = services.Where(s => Map(s.Value).ContainsKey("hostname"))
            .Select(s => $"{Map(s.Value)["hostname"]}:19092")
            .Order()
            .ToList();

        foreach (var name in ServiceNames)
        {
            Assert.True(services.ContainsKey(name), $"compose runs {name}");
            var service = Map(services[name]);
            var build = Map(service["build"]);
            Assert.Equal("services/Dockerfile", build["dockerfile"]);
            var project = (string)Map(build["args"])["PROJECT"];
            Assert.True(File.Exists(Path.Combine(Root, "services", project, $"{project}.csproj")), $"{name} builds {project}");
            Assert.True(service.ContainsKey("healthcheck"), $"{name} has a health check");
            var environment = Map(service["environment"]);
            Assert.Equal(brokers, ((string)environment["KAFKA_BOOTSTRAP_SERVERS"]).Split(',').Order());
            Assert.Equal("service_completed_successfully", Map(Map(service["depends_on"])["kafka-topics"])["condition"]);
        }

        Assert.Contains(ConsumerGroups.Inventory, ServiceNames);
    }

    [Fact]
    public void Compose_keeps_each_services_state_in_a_database_of_its_own_on_one_postgresql_server_with_a_volume()
    {
        var compose = Compose();
        var services = Map(compose["services"]);
        var postgres = Map(services["postgres"]);
        Assert.Contains("postgres-data:/var/lib/postgresql/data", List(postgres["volumes"]).Cast<string>());
        Assert.Equal("${BOOKSTORE_POSTGRES_PASSWORD:?set BOOKSTORE_POSTGRES_PASSWORD}", Map(postgres["environment"])["POSTGRES_PASSWORD"]);
        var created = (string)Map(Map(compose["configs"])["postgres-databases"])["content"];
        Assert.Equal("/docker-entrypoint-initdb.d/databases.sql", Map(List(postgres["configs"]).Single())["target"]);

        var databases = new Dictionary<string, string>();
        foreach (var name in ServiceNames)
        {
            var service = Map(services[name]);
            var environment = Map(service["environment"]);
            Assert.False(service.ContainsKey("volumes"), $"{name} keeps no state of its own: its instances share the server");
            Assert.False(environment.ContainsKey("Messaging__DatabasePath"), $"{name} is not on SQLite");
            Assert.Equal("service_healthy", Map(Map(service["depends_on"])["postgres"])["condition"]);
            foreach (var key in environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.Ordinal)))
            {
                var connection = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = (string)environment[key] };
                Assert.Equal("postgres", connection["Host"]);
                Assert.Equal("${BOOKSTORE_POSTGRES_PASSWORD:?set BOOKSTORE_POSTGRES_PASSWORD}", connection["Password"]);
                databases[$"{name} {key}"] = (string)connection["Database"];
            }
        }

        var expected = ServiceNames.ToDictionary(n => $"{n} ConnectionStrings__Postgres", n => n);
        expected["payment-service ConnectionStrings__GatewayPostgres"] = "payment-gateway";
        Assert.Equal(expected.OrderBy(d => d.Key, StringComparer.Ordinal), databases.OrderBy(d => d.Key, StringComparer.Ordinal));
        Assert.All(databases.Values, database => Assert.Contains($"CREATE DATABASE \"{database}\";", created, StringComparison.Ordinal));
        Assert.Equal(["kafka-1", "kafka-2", "kafka-3", "postgres-data"], Map(compose["volumes"]).Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_dashboard_places_its_orders_through_the_order_service_in_compose_and_kubernetes()
    {
        var services = Map(Compose()["services"]);
        var orderPort = Map(services["order-service"]).TryGetValue("environment", out var orderEnvironment) && Map(orderEnvironment).TryGetValue("ASPNETCORE_HTTP_PORTS", out var port)
            ? (string)port
            : "8080";
        Assert.Equal($"http://order-service:{orderPort}", Map(Map(services["analytics-service"])["environment"])["Dashboard__OrdersUrl"]);

        var documents = Documents("deploy/k8s/services.yaml");
        var orderService = documents.Single(d => (string)d["kind"] == "Service" && (string)Map(d["metadata"])["name"] == "order-service");
        var servicePort = (string)Map(List(Map(orderService["spec"])["ports"])[0])["port"];
        var analytics = documents.Single(d => (string)d["kind"] == "Deployment" && (string)Map(d["metadata"])["name"] == "analytics-service");
        var environment = Values(Map(List(Map(Map(Map(analytics["spec"])["template"])["spec"])["containers"]).Single()));
        Assert.Equal(servicePort == "80" ? "http://order-service" : $"http://order-service:{servicePort}", environment["Dashboard__OrdersUrl"]);
    }

    [Theory]
    [InlineData("inventory-service")]
    [InlineData("payment-service")]
    [InlineData("notification-service")]
    public void A_service_one_scales_gets_an_ephemeral_loopback_port(string name)
    {
        // 127.0.0.1::8080: the engine picks a free host port on loopback for each instance.
        var service = Map(Map(Compose()["services"])[name]);
        Assert.All(List(service["ports"]), port => Assert.Matches(@"^127\.0\.0\.1::\d+$", (string)port));
    }

    [Fact]
    public void Every_published_port_binds_loopback_only()
    {
        var ports = Map(Compose()["services"]).Values.Select(Map).Where(s => s.ContainsKey("ports")).SelectMany(s => List(s["ports"]).Cast<string>()).ToList();
        Assert.NotEmpty(ports);
        // A port without a host address ("8080", "5100:8080") is published on every interface.
        Assert.All(ports, p => Assert.StartsWith("127.0.0.1:", p, StringComparison.Ordinal));
    }

    [Fact]
    public void Compose_keeps_the_brokers_data_on_their_volumes()
    {
        var compose = Compose();
        var declared = Map(compose["volumes"]).Keys.ToHashSet(StringComparer.Ordinal);
        var brokers = Map(compose["services"]).Values.Select(Map).Where(s => s.ContainsKey("hostname")).ToList();
        Assert.Equal(3, brokers.Count);
        foreach (var broker in brokers)
        {
            var logDirs = ((string)Map(broker["environment"])["KAFKA_LOG_DIRS"]).Split(',');
            var mounts = List(broker["volumes"]).Cast<string>().Select(v => v.Split(':')).ToList();
            // Every log dir (and so the KRaft metadata, kept in the first) is on a named volume,
            // which `docker compose down` keeps; anything else is lost with the container.
            Assert.All(logDirs, dir => Assert.Contains(mounts, m => declared.Contains(m[0]) && (dir == m[1] || dir.StartsWith(m[1] + "/", StringComparison.Ordinal))));
        }

        Assert.Equal(3, brokers.SelectMany(b => List(b["volumes"]).Cast<string>()).Select(v => v.Split(':')[0]).Distinct().Count());
    }

    [Fact]
    public void Compose_builds_the_service_images_and_never_pulls_them()
    {
        var services = Map(Compose()["services"]);
        foreach (var name in ServiceNames)
        {
            var service = Map(services[name]);
            Assert.Equal("build", service["pull_policy"]);
            // An image name beside build makes compose try a registry first (someone else's image).
            Assert.False(service.ContainsKey("image"), $"{name} names no image to pull");
        }
    }

    [Fact]
    public void The_broker_health_check_starts_no_jvm()
    {
        var services = Map(Compose()["services"]);
        foreach (var broker in services.Values.Select(Map).Where(s => s.ContainsKey("hostname")))
        {
            var test = List(Map(broker["healthcheck"])["test"]).Cast<string>().ToList();
            Assert.Equal("CMD", test[0]);
            var command = string.Join(' ', test.Skip(1));
            // The apache/kafka image is Alpine with bash (its scripts need it); bash connects by itself.
            Assert.Equal("bash", test[1]);
            Assert.Matches(@"/dev/tcp/127\.0\.0\.1/19092", command);
            Assert.DoesNotContain(".sh", command, StringComparison.Ordinal);
            Assert.DoesNotContain("java", command, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Compose_runs_the_maintained_kafka_ui_at_a_pinned_version()
    {
        var ui = Map(Map(Compose()["services"])["kafka-ui"]);
        Assert.Matches(@"^kafbat/kafka-ui:v\d+\.\d+\.\d+$", (string)ui["image"]);
    }

    private static readonly string[] OtherDefaultComposeFiles = ["compose.yml", "docker-compose.yml", "docker-compose.yaml"];

    [Fact]
    public void A_bare_docker_compose_up_finds_the_stack()
    {
        var compose = Documents("compose.yaml").Single();
        var included = List(compose["include"]).Select(i => i is string path ? path : (string)Map(i)["path"]);
        Assert.Equal(["docker-compose.kafka.yml"], included);
        // compose.yaml is the first default name compose looks for; another default file beside it
        // would be a second, competing stack.
        Assert.All(OtherDefaultComposeFiles, name => Assert.False(File.Exists(Path.Combine(Root, name)), $"{name} does not exist"));
    }

    [Fact]
    public void Compose_probes_the_services_through_the_images_launcher()
    {
        var services = Map(Compose()["services"]);
        var dockerfile = File.ReadAllText(Path.Combine(Root, "services", "Dockerfile"));
        foreach (var name in ServiceNames)
        {
            var test = List(Map(Map(services[name])["healthcheck"])["test"]).Cast<string>().ToList();
            Assert.Equal(["CMD", "/app/bookstore-service", "probe"], test);
        }

        Assert.Contains("> /app/bookstore-service", dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public void The_service_image_is_multi_stage_non_root_and_health_checked()
    {
        var dockerfile = File.ReadAllLines(Path.Combine(Root, "services", "Dockerfile"));
        Assert.Equal(2, dockerfile.Count(l => l.StartsWith("FROM ", StringComparison.Ordinal)));
        Assert.Contains(dockerfile, l => l.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:10.0", StringComparison.Ordinal));
        var user = dockerfile.Last(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.DoesNotContain("root", user, StringComparison.Ordinal);
        Assert.Contains(dockerfile, l => l.StartsWith("HEALTHCHECK ", StringComparison.Ordinal) && l.Contains("probe", StringComparison.Ordinal));
    }

    [Fact]
    public void The_service_image_passes_docker_run_arguments_to_the_service()
    {
        var dockerfile = File.ReadAllLines(Path.Combine(Root, "services", "Dockerfile"));
        var entrypoint = dockerfile.Single(l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal));
        // Exec form: the arguments of `docker run IMAGE …` are appended to it. A shell form, or
        // sh -c "…" without "$@", drops them.
        Assert.Equal("ENTRYPOINT [\"/app/bookstore-service\"]", entrypoint);
        var launcher = dockerfile.Single(l => l.Contains("> /app/bookstore-service", StringComparison.Ordinal));
        Assert.Contains("exec dotnet /app/%s.dll \"$@\"", launcher, StringComparison.Ordinal);
        Assert.Contains(dockerfile, l => l.Contains("chmod 755 /app/bookstore-service", StringComparison.Ordinal));
    }

    private static readonly string[] ProjectFolders = ["shared", "services"];

    [Fact]
    public void The_service_image_restores_from_the_project_files_before_copying_the_sources()
    {
        var dockerfile = File.ReadAllLines(Path.Combine(Root, "services", "Dockerfile")).ToList();
        var restore = dockerfile.FindIndex(l => l.Contains("dotnet restore", StringComparison.Ordinal));
        var sources = dockerfile.FindIndex(l => l.StartsWith("COPY shared/ ", StringComparison.Ordinal));
        Assert.InRange(restore, 0, sources);
        Assert.True(dockerfile.FindIndex(l => l.StartsWith("COPY services/ ", StringComparison.Ordinal)) > restore, "the sources come after the restore");
        Assert.Contains(dockerfile, l => l.Contains("dotnet publish", StringComparison.Ordinal) && l.Contains("--no-restore", StringComparison.Ordinal));

        // Every project a service can reference is there for the restore.
        var copied = dockerfile.Take(restore).Where(l => l.StartsWith("COPY ", StringComparison.Ordinal)).ToList();
        foreach (var project in ProjectFolders.SelectMany(d => Directory.GetFiles(Path.Combine(Root, d), "*.csproj", SearchOption.AllDirectories)))
        {
            var relative = Path.GetRelativePath(Root, project).Replace('\\', '/');
            Assert.Contains(copied, l => l.StartsWith($"COPY {relative} ", StringComparison.Ordinal));
        }

        Assert.Contains(copied, l => l.Contains("Directory.Build.props", StringComparison.Ordinal) && l.Contains("Directory.Packages.props", StringComparison.Ordinal));
    }

    [Fact]
    public void Kubernetes_runs_the_five_services_with_probes_on_the_health_endpoints()
    {
        var documents = Documents("deploy/k8s/services.yaml");
        var kafka = Documents("deploy/k8s/kafka-cluster.yaml").Single(d => (string)d["kind"] == "Kafka");
        var bootstrap = $"{Map(kafka["metadata"])["name"]}-kafka-bootstrap:{Map(List(Map(Map(kafka["spec"])["kafka"])["listeners"])[0])["port"]}";

        foreach (var name in ServiceNames)
        {
            var deployment = documents.Single(d => (string)d["kind"] == "Deployment" && (string)Map(d["metadata"])["name"] == name);
            var container = Map(List(Map(Map(Map(deployment["spec"])["template"])["spec"])["containers"]).Single());
            Assert.Equal("/health/ready", Map(Map(container["readinessProbe"])["httpGet"])["path"]);
            Assert.Equal("/health/live", Map(Map(container["livenessProbe"])["httpGet"])["path"]);
            var environment = Values(container);
            Assert.Equal(bootstrap, environment["KAFKA_BOOTSTRAP_SERVERS"]);
            Assert.Contains(documents, d => (string)d["kind"] == "Service" && (string)Map(d["metadata"])["name"] == name);
        }
    }

    [Fact]
    public void Compose_requires_the_admin_key_from_the_environment_and_holds_none()
    {
        var services = Map(Compose()["services"]);
        foreach (var name in ServiceNames)
        {
            // ${VAR:?message}: compose refuses to start without it; no default value to fall back on.
            Assert.Equal("${BOOKSTORE_ADMIN_KEY:?set BOOKSTORE_ADMIN_KEY}", Map(Map(services[name])["environment"])["Admin__ApiKey"]);
        }
    }

    [Fact]
    public void Kubernetes_takes_the_admin_key_from_a_secret_that_is_not_committed()
    {
        var documents = Directory.GetFiles(Path.Combine(Root, "deploy", "k8s"), "*.yaml")
            .SelectMany(f => Documents(Path.GetRelativePath(Root, f)))
            .ToList();
        Assert.DoesNotContain(documents, d => (string)d["kind"] == "Secret");

        foreach (var name in ServiceNames)
        {
            var deployment = documents.Single(d => (string)d["kind"] == "Deployment" && (string)Map(d["metadata"])["name"] == name);
            var container = Map(List(Map(Map(Map(deployment["spec"])["template"])["spec"])["containers"]).Single());
            var adminKey = List(container["env"]).Select(Map).Single(e => (string)e["name"] == "Admin__ApiKey");
            Assert.False(adminKey.ContainsKey("value"), $"{name}: the admin key is not written in the manifest");
            var secret = Map(Map(adminKey["valueFrom"])["secretKeyRef"]);
            Assert.Equal(("bookstore-admin", "api-key"), ((string)secret["name"], (string)secret["key"]));
        }
    }

    [Fact]
    public void Keda_scales_the_consumer_services_on_their_group_lag_up_to_the_partition_count()
    {
        var scaled = Documents("deploy/k8s/services.yaml").Where(d => (string)d["kind"] == "ScaledObject").ToList();

        Assert.Equal(["inventory-service", "notification-service", "payment-service"], scaled.Select(d => (string)Map(d["metadata"])["name"]).Order());
        foreach (var scaledObject in scaled)
        {
            var spec = Map(scaledObject["spec"]);
            var trigger = Map(List(spec["triggers"]).Single());
            var metadata = Map(trigger["metadata"]);
            Assert.Equal("kafka", trigger["type"]);
            Assert.Contains((string)metadata["consumerGroup"], ConsumerGroups.All);
            Assert.Equal(Map(scaledObject["metadata"])["name"], metadata["consumerGroup"]);
            var topic = Topics.Get((string)metadata["topic"]);
            Assert.True(int.Parse((string)spec["maxReplicaCount"], CultureInfo.InvariantCulture) <= topic.Partitions, "no replica beyond the partition count");
        }
    }

    private static Dictionary<object, object> Compose() =>
        Documents("docker-compose.kafka.yml").Single();

    private static List<Dictionary<object, object>> Documents(string relativePath)
    {
        using var reader = new StringReader(File.ReadAllText(Path.Combine(Root, relativePath)));
        var parser = new MergingParser(new Parser(reader));
        var deserializer = new DeserializerBuilder().Build();
        parser.Consume<YamlDotNet.Core.Events.StreamStart>();
        var documents = new List<Dictionary<object, object>>();
        while (parser.Accept<YamlDotNet.Core.Events.DocumentStart>(out _))
        {
            if (deserializer.Deserialize<Dictionary<object, object>?>(parser) is { } document)
            {
                documents.Add(document);
            }
        }

        return documents;
    }

    /// <summary>A container's plain environment values; those taken from a Secret have none here.</summary>
    private static Dictionary<string, string> Values(Dictionary<string, object> container) =>
        List(container["env"]).Select(Map).Where(e => e.ContainsKey("value")).ToDictionary(e => (string)e["name"], e => (string)e["value"]);

    private static Dictionary<string, object> Map(object value) =>
        ((Dictionary<object, object>)value).ToDictionary(kv => (string)kv.Key, kv => kv.Value);

    private static List<object> List(object value) => (List<object>)value;

    [GeneratedRegex(@"^\s*create (?<name>[a-z-]+) (?<partitions>\d+) (?<policy>delete|compact) (?<retention>\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex CreateLine();
}
