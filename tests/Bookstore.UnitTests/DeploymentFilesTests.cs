using System.Globalization;
using System.Text.RegularExpressions;
using Bookstore.Contracts;
using Bookstore.Contracts.Events;
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
        var topics = Manifests().Where(d => (string)d["kind"] == "KafkaTopic").ToList();

        Assert.Equal(Topics.All.Select(t => t.Name).Order(), topics.Select(t => (string)Map(t["metadata"])["name"]).Order());
        foreach (var topic in topics)
        {
            var declared = Topics.Get((string)Map(topic["metadata"])["name"]);
            var spec = Map(topic["spec"]);
            var config = Map(spec["config"]);
            Assert.Equal(declared.Partitions.ToString(CultureInfo.InvariantCulture), spec["partitions"]);
            Assert.Equal(declared.ReplicationFactor.ToString(CultureInfo.InvariantCulture), spec["replicas"]);
            Assert.Equal(declared.Configs(), config.ToDictionary(kv => kv.Key, kv => (string)kv.Value));
            Assert.Equal(KafkaClusterName(), Map(Map(topic["metadata"])["labels"])["strimzi.io/cluster"]);
        }
    }

    [Fact]
    public void Every_strimzi_resource_uses_the_v1_api_of_strimzi_1()
    {
        // kafka.strimzi.io/v1beta2 is gone since Strimzi 1.0: "no matches for kind".
        var strimzi = Manifests().Where(d => ((string)d["apiVersion"]).StartsWith("kafka.strimzi.io/", StringComparison.Ordinal)).ToList();

        Assert.Equal(["Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"], strimzi.Select(d => (string)d["kind"]).Distinct().Order(StringComparer.Ordinal));
        Assert.All(strimzi, d => Assert.Equal("kafka.strimzi.io/v1", d["apiVersion"]));
        Assert.All(strimzi.Where(d => (string)d["kind"] != "Kafka"), d => Assert.Equal(KafkaClusterName(), Map(Map(d["metadata"])["labels"])["strimzi.io/cluster"]));
    }

    [Fact]
    public void Strimzi_cluster_runs_kafka_4_in_kraft_on_a_node_pool_with_no_loss_settings()
    {
        var documents = Manifests();
        var pool = Map(documents.Single(d => (string)d["kind"] == "KafkaNodePool")["spec"]);
        var kafka = documents.Single(d => (string)d["kind"] == "Kafka");
        var spec = Map(Map(kafka["spec"])["kafka"]);
        var config = Map(spec["config"]);

        // KRaft and node pools are the only mode of Strimzi 1.x: the old opt-in annotations are gone.
        var metadata = Map(kafka["metadata"]);
        Assert.False(metadata.TryGetValue("annotations", out var annotations) && Map(annotations).Keys.Any(k => k is "strimzi.io/kraft" or "strimzi.io/node-pools"), "no obsolete KRaft/node-pool annotations");
        Assert.Equal("3", pool["replicas"]);
        Assert.Equal(["broker", "controller"], List(pool["roles"]).Cast<string>().Order(StringComparer.Ordinal));
        // The log survives a pod's restart and the pool's deletion.
        var storage = Map(pool["storage"]);
        var volumes = (string)storage["type"] == "jbod" ? List(storage["volumes"]).Select(Map).ToList() : [storage];
        Assert.All(volumes, v => Assert.Equal(("persistent-claim", "false"), ((string)v["type"], (string)v.GetValueOrDefault("deleteClaim", "false"))));
        Assert.Matches(@"^4\.\d+\.\d+$", (string)spec["version"]);
        Assert.Equal("3", config["default.replication.factor"]);
        Assert.Equal("2", config["min.insync.replicas"]);
        Assert.Equal("3", config["offsets.topic.replication.factor"]);
        Assert.Equal("false", config["unclean.leader.election.enable"]);
        Assert.Equal("false", config["auto.create.topics.enable"]);
    }

    [Fact]
    public void Every_kafka_listener_authenticates_and_the_cluster_authorizes_with_acls()
    {
        var kafka = Manifests().Single(d => (string)d["kind"] == "Kafka");
        var spec = Map(Map(kafka["spec"])["kafka"]);
        var listeners = List(spec["listeners"]).Select(Map).ToList();

        string[] authentications = ["scram-sha-512", "tls"];
        Assert.NotEmpty(listeners);
        Assert.All(listeners, l => Assert.Contains((string)Map(l["authentication"])["type"], authentications));
        Assert.Equal("simple", Map(spec["authorization"])["type"]);
        var entityOperator = Map(Map(kafka["spec"])["entityOperator"]);
        Assert.True(entityOperator.ContainsKey("topicOperator") && entityOperator.ContainsKey("userOperator"), "the operators that create the KafkaTopics and KafkaUsers run");
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

    [Fact]
    public void Compose_runs_a_pinned_otel_lgtm_whose_only_published_port_is_grafana_on_loopback()
    {
        var lgtm = Map(Map(Compose()["services"])["otel-lgtm"]);
        Assert.Matches(@"^grafana/otel-lgtm:\d+\.\d+\.\d+$", (string)lgtm["image"]);
        // Grafana's UI on the host's loopback; the collector's OTLP ports stay inside the compose network.
        Assert.Equal(["127.0.0.1:3000:3000"], List(lgtm["ports"]).Cast<string>());
        Assert.Equal(["4317", "4318"], List(lgtm["expose"]).Cast<string>().Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Compose_services_export_traces_metrics_and_logs_over_otlp_http_to_otel_lgtm_under_their_own_names()
    {
        var services = Map(Compose()["services"]);
        var lgtmPorts = List(Map(services["otel-lgtm"])["expose"]).Cast<string>().ToList();
        foreach (var name in ServiceNames)
        {
            var service = Map(services[name]);
            var environment = Map(service["environment"]);
            var endpoint = new Uri((string)environment["OTEL_EXPORTER_OTLP_ENDPOINT"]);
            // OTLP/HTTP's port, on the backend's compose service name; the exporter appends /v1/traces and so on.
            Assert.Equal(("http", "otel-lgtm", 4318, "/"), (endpoint.Scheme, endpoint.Host, endpoint.Port, endpoint.AbsolutePath));
            Assert.Contains(endpoint.Port.ToString(CultureInfo.InvariantCulture), lgtmPorts);
            Assert.Equal("http/protobuf", environment["OTEL_EXPORTER_OTLP_PROTOCOL"]);
            Assert.Equal(name, environment["OTEL_SERVICE_NAME"]);
            Assert.Equal("service_started", Map(Map(service["depends_on"])["otel-lgtm"])["condition"]);
        }
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
    public void Kubernetes_runs_the_five_services_with_probes_on_the_health_endpoints()
    {
        var documents = Manifests();

        Assert.Equal(ServiceNames.Order(StringComparer.Ordinal), Deployments().Select(d => (string)Map(d["metadata"])["name"]).Order(StringComparer.Ordinal));
        foreach (var name in ServiceNames)
        {
            var container = Container(Deployment(name));
            Assert.Equal("/health/ready", Map(Map(container["readinessProbe"])["httpGet"])["path"]);
            Assert.Equal("/health/live", Map(Map(container["livenessProbe"])["httpGet"])["path"]);
            Assert.Equal("8080", Map(List(container["ports"]).Single())["containerPort"]);
            var resources = Map(container["resources"]);
            Assert.True(Map(resources["requests"]).ContainsKey("memory") && Map(resources["limits"]).ContainsKey("memory"), $"{name} requests and limits its memory");
            Assert.Contains(documents, d => (string)d["kind"] == "Service" && (string)Map(d["metadata"])["name"] == name);
        }
    }

    [Fact]
    public void Kubernetes_services_export_telemetry_only_to_an_otlp_endpoint_given_in_an_optional_config_map()
    {
        foreach (var name in ServiceNames)
        {
            var container = Container(Deployment(name));
            var endpoint = List(container["env"]).Select(Map).Single(e => (string)e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT");
            Assert.False(endpoint.ContainsKey("value"), $"{name} names no OTLP endpoint of its own");
            var reference = Map(Map(endpoint["valueFrom"])["configMapKeyRef"]);
            Assert.Equal(("bookstore-telemetry", "otlp-endpoint", "true"), ((string)reference["name"], (string)reference["key"], (string)reference["optional"]));
            Assert.Equal("http/protobuf", Values(container)["OTEL_EXPORTER_OTLP_PROTOCOL"]);
        }

        // No backend here, and no ConfigMap: without one the pods start and export nothing.
        Assert.DoesNotContain(Manifests(), d => (string)d["kind"] == "ConfigMap" && (string)Map(d["metadata"])["name"] == "bookstore-telemetry");
    }

    [Fact]
    public void Kubernetes_services_log_in_to_kafka_as_their_own_kafka_user_over_tls()
    {
        var users = Manifests().Where(d => (string)d["kind"] == "KafkaUser").Select(d => (string)Map(d["metadata"])["name"]).ToHashSet();
        var listener = AuthenticatedListener();
        var caSecret = $"{KafkaClusterName()}-cluster-ca-cert";

        foreach (var name in ServiceNames)
        {
            var pod = PodSpec(Deployment(name));
            var container = Container(Deployment(name));
            var environment = Values(container);
            var secrets = SecretRefs(container);
            Assert.Equal(KafkaBootstrap(), environment["Messaging__BootstrapServers"]);
            Assert.Equal((string)listener["tls"] == "true" ? "SaslSsl" : "SaslPlaintext", environment["Messaging__SecurityProtocol"]);
            Assert.Equal("ScramSha512", environment["Messaging__SaslMechanism"]);
            Assert.Equal(name, environment["Messaging__SaslUsername"]);
            Assert.Contains(name, users);
            // The User Operator writes the password into a Secret named after the KafkaUser.
            Assert.Equal((name, "password"), secrets["Messaging__SaslPassword"]);
            Assert.False(environment.ContainsKey("Messaging__BrokerVersion"), $"{name}: a modern broker answers ApiVersions itself");
            Assert.False(environment.ContainsKey("KAFKA_BOOTSTRAP_SERVERS"), $"{name}: one bootstrap setting");

            // The CA file is the cluster CA's ca.crt, mounted from Strimzi's Secret.
            var caLocation = environment["Messaging__SslCaLocation"];
            var mount = List(container["volumeMounts"]).Select(Map).Single(m => caLocation.StartsWith((string)m["mountPath"] + "/", StringComparison.Ordinal));
            var volume = List(pod["volumes"]).Select(Map).Single(v => (string)v["name"] == (string)mount["name"]);
            var secret = Map(volume["secret"]);
            Assert.Equal(caSecret, secret["secretName"]);
            var file = caLocation[((string)mount["mountPath"]).Length..].TrimStart('/');
            var item = secret.TryGetValue("items", out var items) ? List(items).Select(Map).Single(i => (string)i["path"] == file) : null;
            Assert.Equal("ca.crt", item is null ? file : item["key"]);
        }
    }

    [Fact]
    public void Each_service_has_a_kafka_user_whose_acls_name_only_its_own_topics_and_groups()
    {
        var users = KafkaUsers();

        foreach (var name in ServiceNames)
        {
            var user = users[name];
            Assert.Equal("scram-sha-512", Map(user["authentication"])["type"]);
            var sources = ServiceSources(name);
            var consumed = ConsumedTopics(name);
            var produced = ProducedTopics(sources).Append(Topics.DeadLetters.Name).Distinct().ToList();
            var expected = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var topic in consumed)
            {
                expected.UnionWith([$"topic {topic} Read", $"topic {topic} Describe"]);
            }

            foreach (var topic in produced)
            {
                expected.UnionWith([$"topic {topic} Write", $"topic {topic} Describe"]);
            }

            // Its consumer group, and the groups it names after it (Analytics' replay and dashboard).
            foreach (var group in OwnGroups(name, sources))
            {
                expected.UnionWith([$"group {group} Read", $"group {group} Describe"]);
            }

            // A dashboard of every group (ConsumerGroups.All) describes them; it never joins or commits for them.
            if (sources.Contains("ConsumerGroups.All", StringComparison.Ordinal))
            {
                expected.UnionWith(ConsumerGroups.All.Where(g => g != name).Select(g => $"group {g} Describe"));
            }

            Assert.Equal(expected, Acls(user));
        }
    }

    [Fact]
    public void Only_the_payment_service_may_write_payment_results_and_only_the_inventory_service_the_catalog()
    {
        var users = KafkaUsers();
        IEnumerable<string> Writers(string topic) => users.Where(u => Acls(u.Value).Contains($"topic {topic} Write")).Select(u => u.Key).Order(StringComparer.Ordinal);

        // No other pod can forge a PaymentSucceeded, or a price.
        Assert.Equal(["payment-service"], Writers(EventCatalog.PaymentSucceeded.Topic.Name));
        Assert.Equal(["inventory-service"], Writers(EventCatalog.BookPriceChanged.Topic.Name));
        Assert.Equal(["order-service"], Writers(EventCatalog.OrderPlaced.Topic.Name));
        Assert.Equal(["inventory-service"], Writers(EventCatalog.StockReserved.Topic.Name));
        Assert.Equal(ServiceNames.Order(StringComparer.Ordinal), Writers(Topics.DeadLetters.Name));
    }

    [Fact]
    public void Kubernetes_keeps_each_services_state_in_its_own_cloudnativepg_database_and_claims_no_volume()
    {
        var documents = Manifests();
        Assert.DoesNotContain(documents, d => (string)d["kind"] == "PersistentVolumeClaim");
        var cluster = documents.Single(d => (string)d["kind"] == "Cluster" && (string)d["apiVersion"] == "postgresql.cnpg.io/v1");
        var clusterName = (string)Map(cluster["metadata"])["name"];
        var initdb = Map(Map(Map(cluster["spec"])["bootstrap"])["initdb"]);
        // The services compare ISO-8601 text timestamps: only the C collation sorts them as time.
        Assert.Equal(("C", "C"), ((string)initdb["localeCollate"], (string)initdb["localeCType"]));
        var owner = (string)initdb["owner"];
        var databases = documents.Where(d => (string)d["kind"] == "Database").Select(d => Map(d["spec"])).ToList();
        Assert.All(databases, d => Assert.Equal((clusterName, owner), ((string)Map(d["cluster"])["name"], (string)d["owner"])));
        Assert.All(databases, d => Assert.Equal(("C", "C"), ((string)d["localeCollate"], (string)d["localeCType"])));

        var used = new Dictionary<string, string>();
        foreach (var name in ServiceNames)
        {
            var deployment = Deployment(name);
            var pod = PodSpec(deployment);
            var container = Container(deployment);
            Assert.All(pod.TryGetValue("volumes", out var volumes) ? List(volumes).Select(Map) : [], v => Assert.False(v.ContainsKey("persistentVolumeClaim"), $"{name} keeps no state in a volume"));
            var environment = List(container["env"]).Select(Map).ToList();
            Assert.DoesNotContain(environment, e => (string)e["name"] == "Messaging__DatabasePath");
            var secrets = SecretRefs(container);
            for (var i = 0; i < environment.Count; i++)
            {
                var key = (string)environment[i]["name"];
                if (!key.StartsWith("ConnectionStrings__", StringComparison.Ordinal))
                {
                    continue;
                }

                // $(VAR) expands only variables defined before it in the list.
                var earlier = environment.Take(i).Select(e => (string)e["name"]).ToHashSet();
                var connection = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = (string)environment[i]["value"] };
                foreach (var (setting, secretKey) in new[] { ("Host", "host"), ("Username", "username"), ("Password", "password") })
                {
                    var reference = VariableReference().Match((string)connection[setting]);
                    Assert.True(reference.Success, $"{name} {key}: {setting} comes from a variable");
                    var variable = reference.Groups["name"].Value;
                    Assert.Contains(variable, earlier);
                    Assert.Equal(($"{clusterName}-app", secretKey), secrets[variable]);
                }

                used[$"{name} {key}"] = (string)connection["Database"];
            }
        }

        var expected = ServiceNames.ToDictionary(n => $"{n} ConnectionStrings__Postgres", n => n);
        expected["payment-service ConnectionStrings__GatewayPostgres"] = "payment-gateway";
        Assert.Equal(expected.OrderBy(d => d.Key, StringComparer.Ordinal), used.OrderBy(d => d.Key, StringComparer.Ordinal));
        Assert.Equal(used.Values.Order(StringComparer.Ordinal), databases.Select(d => (string)d["name"]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Kubernetes_pods_pass_the_restricted_pod_security_standard()
    {
        var ns = Manifests().Single(d => (string)d["kind"] == "Namespace");
        Assert.Equal(KustomizeNamespace(), Map(ns["metadata"])["name"]);
        Assert.Equal("restricted", Map(Map(ns["metadata"])["labels"])["pod-security.kubernetes.io/enforce"]);

        string[] allowedVolumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
        string[] hostNamespaces = ["hostNetwork", "hostPID", "hostIPC"];
        foreach (var deployment in Deployments())
        {
            var name = (string)Map(deployment["metadata"])["name"];
            var pod = PodSpec(deployment);
            var podContext = pod.TryGetValue("securityContext", out var p) ? Map(p) : new Dictionary<string, object>();
            Assert.Equal("true", podContext.GetValueOrDefault("runAsNonRoot"));
            Assert.False(podContext.TryGetValue("runAsUser", out var podUser) && (string)podUser == "0", $"{name} does not run as root");
            Assert.All(hostNamespaces, k => Assert.NotEqual("true", pod.GetValueOrDefault(k)));
            Assert.All(pod.TryGetValue("volumes", out var volumes) ? List(volumes).Select(Map) : [], v => Assert.Contains(v.Keys.Single(k => k != "name"), allowedVolumes));
            var containers = List(pod["containers"]).Concat(pod.TryGetValue("initContainers", out var init) ? List(init) : []).Select(Map);
            foreach (var container in containers)
            {
                var context = Map(container["securityContext"]);
                Assert.Equal("false", context["allowPrivilegeEscalation"]);
                Assert.NotEqual("true", context.GetValueOrDefault("privileged"));
                var capabilities = Map(context["capabilities"]);
                Assert.Equal(["ALL"], List(capabilities["drop"]).Cast<string>());
                Assert.False(capabilities.ContainsKey("add"), $"{name} adds no capability");
                var seccomp = context.TryGetValue("seccompProfile", out var s) ? Map(s) : Map(podContext["seccompProfile"]);
                Assert.Equal("RuntimeDefault", seccomp["type"]);
                Assert.False(context.TryGetValue("runAsUser", out var user) && (string)user == "0", $"{name} does not run as root");
            }
        }
    }

    [Fact]
    public void Kubernetes_takes_the_admin_key_from_a_secret_that_is_not_committed()
    {
        var documents = Manifests();
        Assert.DoesNotContain(documents, d => (string)d["kind"] == "Secret");

        foreach (var name in ServiceNames)
        {
            var container = Container(Deployment(name));
            var adminKey = List(container["env"]).Select(Map).Single(e => (string)e["name"] == "Admin__ApiKey");
            Assert.False(adminKey.ContainsKey("value"), $"{name}: the admin key is not written in the manifest");
            var secret = Map(Map(adminKey["valueFrom"])["secretKeyRef"]);
            Assert.Equal(("bookstore-admin", "api-key"), ((string)secret["name"], (string)secret["key"]));
        }
    }

    [Fact]
    public void Keda_scales_the_consumer_services_on_their_group_lag_up_to_the_partition_count()
    {
        var documents = Manifests();
        var scaled = documents.Where(d => (string)d["kind"] == "ScaledObject").ToList();

        Assert.Equal(["inventory-service", "notification-service", "payment-service"], scaled.Select(d => (string)Map(d["metadata"])["name"]).Order());
        foreach (var scaledObject in scaled)
        {
            var name = (string)Map(scaledObject["metadata"])["name"];
            var spec = Map(scaledObject["spec"]);
            var trigger = Map(List(spec["triggers"]).Single());
            var metadata = Map(trigger["metadata"]);
            Assert.Equal("kafka", trigger["type"]);
            Assert.Contains((string)metadata["consumerGroup"], ConsumerGroups.All);
            Assert.Equal(name, metadata["consumerGroup"]);
            Assert.Equal(name, Map(spec["scaleTargetRef"])["name"]);
            var topic = Topics.Get((string)metadata["topic"]);
            Assert.Contains(topic.Name, ConsumedTopics(name));
            Assert.True(int.Parse((string)spec["maxReplicaCount"], CultureInfo.InvariantCulture) <= topic.Partitions, "no replica beyond the partition count");

            // KEDA runs in its own namespace: the address names the cluster's, and it logs in as the services do.
            Assert.Equal(KafkaBootstrap(), metadata["bootstrapServers"]);
            Assert.Equal("scram_sha512", metadata["sasl"]);
            Assert.Equal((string)AuthenticatedListener()["tls"] == "true" ? "enable" : "disable", metadata["tls"]);
            Assert.Equal("keda-kafka-scaler", Map(trigger["authenticationRef"])["name"]);

            // KEDA owns the replica count.
            Assert.False(Map(Deployment(name)["spec"]).ContainsKey("replicas"), $"{name} sets no replicas beside KEDA");
        }
    }

    [Fact]
    public void Keda_logs_in_as_a_kafka_user_that_can_only_describe_the_groups_and_topics_it_scales_on()
    {
        var documents = Manifests();
        var triggers = documents.Where(d => (string)d["kind"] == "ScaledObject")
            .Select(d => Map(List(Map(d["spec"])["triggers"]).Single()))
            .ToList();
        var authentication = documents.Single(d => (string)d["kind"] == "TriggerAuthentication" && (string)Map(d["metadata"])["name"] == "keda-kafka-scaler");
        var spec = Map(authentication["spec"]);
        var fromSecrets = List(spec["secretTargetRef"]).Select(Map).ToDictionary(r => (string)r["parameter"], r => ((string)r["name"], (string)r["key"]));
        var fromConfigMaps = List(spec["configMapTargetRef"]).Select(Map).ToDictionary(r => (string)r["parameter"], r => ((string)r["name"], (string)r["key"]));
        var configMap = documents.Single(d => (string)d["kind"] == "ConfigMap" && (string)Map(d["metadata"])["name"] == fromConfigMaps["username"].Item1);
        var username = (string)Map(configMap["data"])[fromConfigMaps["username"].Item2];

        Assert.Equal((username, "password"), fromSecrets["password"]);
        Assert.Equal(($"{KafkaClusterName()}-cluster-ca-cert", "ca.crt"), fromSecrets["ca"]);
        var user = KafkaUsers()[username];
        Assert.Equal("scram-sha-512", Map(user["authentication"])["type"]);
        var expected = triggers.SelectMany(t => new[] { $"group {Map(t["metadata"])["consumerGroup"]} Describe", $"topic {Map(t["metadata"])["topic"]} Describe" });
        Assert.Equal(new SortedSet<string>(expected, StringComparer.Ordinal), Acls(user));
    }

    [Fact]
    public void The_kustomization_lists_every_manifest_and_sets_every_image_in_one_place()
    {
        var kustomization = Kustomization();
        var resources = List(kustomization["resources"]).Cast<string>().ToList();
        Assert.All(resources, r => Assert.True(File.Exists(Path.Combine(Root, "deploy", "k8s", r)), $"{r} exists"));
        Assert.Equal(
            Directory.GetFiles(Path.Combine(Root, "deploy", "k8s"), "*.yaml").Select(f => Path.GetFileName(f)).Where(f => f != "kustomization.yaml").Order(StringComparer.Ordinal),
            resources.Order(StringComparer.Ordinal));

        var images = List(kustomization["images"]).Select(Map).ToDictionary(i => (string)i["name"]);
        foreach (var deployment in Deployments())
        {
            var name = (string)Map(deployment["metadata"])["name"];
            foreach (var container in List(PodSpec(deployment)["containers"]).Select(Map))
            {
                var image = (string)container["image"];
                // No tag here: kustomization.yaml sets it, for every container of that image.
                Assert.DoesNotContain(":", image, StringComparison.Ordinal);
                Assert.True(images.ContainsKey(image), $"{name}: kustomization.yaml has an images: entry for {image}");
                Assert.NotEqual("latest", images[image].GetValueOrDefault("newTag"));
                // Images loaded into kind (or pulled once) are used as they are.
                Assert.Equal("IfNotPresent", container["imagePullPolicy"]);
            }
        }

        Assert.Equal(ServiceNames.Select(n => $"bookstore/{n}").Order(StringComparer.Ordinal), images.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_deployment_guide_pins_the_operators_it_installs()
    {
        var guide = File.ReadAllText(Path.Combine(Root, "deploy", "README.md"));
        var kafka = Map(Map(Manifests().Single(d => (string)d["kind"] == "Kafka")["spec"])["kafka"]);

        Assert.DoesNotContain("install/latest", guide, StringComparison.Ordinal);
        Assert.Contains("--version 1.2.0", guide, StringComparison.Ordinal);
        Assert.Contains("keda-2.20.2.yaml", guide, StringComparison.Ordinal);
        Assert.Contains("cnpg-1.30.0.yaml", guide, StringComparison.Ordinal);
        Assert.Contains($"Kafka {kafka["version"]}", guide, StringComparison.Ordinal);
        Assert.Contains("kubectl apply -k deploy/k8s", guide, StringComparison.Ordinal);
        Assert.Contains("kind load docker-image", guide, StringComparison.Ordinal);
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

    private static readonly Dictionary<string, string> ServiceProjects = new()
    {
        ["order-service"] = "Bookstore.Orders",
        ["inventory-service"] = "Bookstore.Inventory",
        ["payment-service"] = "Bookstore.Payments",
        ["notification-service"] = "Bookstore.Notifications",
        ["analytics-service"] = "Bookstore.Analytics",
    };

    private static Dictionary<string, object> Kustomization() => Map(Documents("deploy/k8s/kustomization.yaml").Single());

    private static string KustomizeNamespace() => (string)Kustomization()["namespace"];

    /// <summary>Every object <c>kubectl apply -k deploy/k8s</c> creates, as written (before kustomize
    /// sets their namespace and image tags).</summary>
    private static List<Dictionary<object, object>> Manifests() =>
        [.. List(Kustomization()["resources"]).Cast<string>().SelectMany(r => Documents(Path.Combine("deploy", "k8s", r)))];

    private static string KafkaClusterName() => (string)Map(Manifests().Single(d => (string)d["kind"] == "Kafka")["metadata"])["name"];

    /// <summary>The listener the clients use: SCRAM-SHA-512 logins.</summary>
    private static Dictionary<string, object> AuthenticatedListener() =>
        List(Map(Map(Manifests().Single(d => (string)d["kind"] == "Kafka")["spec"])["kafka"])["listeners"])
            .Select(Map)
            .Single(l => l.TryGetValue("authentication", out var a) && (string)Map(a)["type"] == "scram-sha-512");

    /// <summary>Strimzi's bootstrap Service, namespace-qualified: KEDA resolves names from its own namespace.</summary>
    private static string KafkaBootstrap() => $"{KafkaClusterName()}-kafka-bootstrap.{KustomizeNamespace()}.svc:{AuthenticatedListener()["port"]}";

    private static List<Dictionary<object, object>> Deployments() => [.. Manifests().Where(d => (string)d["kind"] == "Deployment")];

    private static Dictionary<object, object> Deployment(string name) => Deployments().Single(d => (string)Map(d["metadata"])["name"] == name);

    private static Dictionary<string, object> PodSpec(Dictionary<object, object> deployment) => Map(Map(Map(deployment["spec"])["template"])["spec"]);

    private static Dictionary<string, object> Container(Dictionary<object, object> deployment) => Map(List(PodSpec(deployment)["containers"]).Single());

    /// <summary>A container's environment variables taken from a Secret: variable → (Secret, key).</summary>
    private static Dictionary<string, (string Secret, string Key)> SecretRefs(Dictionary<string, object> container) =>
        List(container["env"]).Select(Map)
            .Where(e => e.TryGetValue("valueFrom", out var from) && Map(from).ContainsKey("secretKeyRef"))
            .ToDictionary(e => (string)e["name"], e =>
            {
                var reference = Map(Map(e["valueFrom"])["secretKeyRef"]);
                return ((string)reference["name"], (string)reference["key"]);
            });

    private static Dictionary<string, Dictionary<string, object>> KafkaUsers() =>
        Manifests().Where(d => (string)d["kind"] == "KafkaUser").ToDictionary(d => (string)Map(d["metadata"])["name"], d => Map(d["spec"]));

    /// <summary>A KafkaUser's ACLs as "type name Operation" lines; every one allows, on a literal
    /// resource from any host (no deny rules, prefixes or wildcards to reason about).</summary>
    private static SortedSet<string> Acls(Dictionary<string, object> user)
    {
        var authorization = Map(user["authorization"]);
        Assert.Equal("simple", authorization["type"]);
        var acls = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var acl in List(authorization["acls"]).Select(Map))
        {
            var resource = Map(acl["resource"]);
            Assert.Equal("literal", resource.GetValueOrDefault("patternType", "literal"));
            Assert.Equal("allow", acl.GetValueOrDefault("type", "allow"));
            Assert.Equal("*", acl.GetValueOrDefault("host", "*"));
            Assert.NotEqual("*", resource["name"]);
            foreach (var operation in List(acl["operations"]).Cast<string>())
            {
                acls.Add($"{resource["type"]} {resource["name"]} {operation}");
            }
        }

        return acls;
    }

    /// <summary>The C# sources of a service (not its build output).</summary>
    private static string ServiceSources(string service)
    {
        var directory = Path.Combine(Root, "services", ServiceProjects[service]);
        var files = Directory.GetFiles(directory, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(directory, f).Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"))
            .Order(StringComparer.Ordinal);
        return string.Join('\n', files.Select(f => File.ReadAllText(f)));
    }

    /// <summary>The topics a service reads: those of the events its Program.cs handles, and those
    /// its code names from the topic table (Orders' catalog readiness, Analytics' replay and
    /// dashboard, which tails the dead letters too).</summary>
    private static List<string> ConsumedTopics(string service)
    {
        var program = File.ReadAllText(Path.Combine(Root, "services", ServiceProjects[service], "Program.cs"));
        var handled = HandledEvent().Matches(program).Select(m => EventCatalog.All.Single(d => d.ClrType.Name == m.Groups["event"].Value).Topic);
        var named = TopicReference().Matches(ServiceSources(service)).SelectMany(m => NamedTopics(m.Groups["member"].Value));
        var topics = handled.Concat(named).Select(t => t.Name).Distinct().ToList();
        Assert.NotEmpty(topics);
        return topics;
    }

    private static IEnumerable<TopicSpec> NamedTopics(string member) =>
        (typeof(Topics).GetField(member)?.GetValue(null) ?? typeof(Topics).GetProperty(member)?.GetValue(null)) switch
        {
            TopicSpec topic => [topic],
            IEnumerable<TopicSpec> topics => topics,
            _ => [],
        };

    /// <summary>The topics of the events a service creates (<c>new OrderPlaced(…)</c>, or a factory
    /// such as <c>static BookPriceChanged PriceOf(…)</c>): the ones it publishes.</summary>
    private static List<string> ProducedTopics(string sources) =>
        [.. PublishedEvent().Matches(sources)
            .Select(m => EventCatalog.All.FirstOrDefault(d => d.ClrType.Name == m.Groups["event"].Value))
            .OfType<EventDefinition>()
            .Select(d => d.Topic.Name)
            .Distinct()];

    /// <summary>The service's consumer group, and the groups its code names after it
    /// (<c>options.GroupId + "-replay"</c>, <c>$"{options.GroupId}-dashboard"</c>).</summary>
    private static List<string> OwnGroups(string service, string sources)
    {
        Assert.Contains(service, ConsumerGroups.All);
        return [.. OwnGroupSuffix().Matches(sources).Select(m => service + m.Groups["suffix"].Value).Prepend(service).Distinct()];
    }

    [GeneratedRegex(@"^\s*create (?<name>[a-z-]+) (?<partitions>\d+) (?<policy>delete|compact) (?<retention>\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex CreateLine();

    [GeneratedRegex(@"\.Handle<(?<event>\w+),")]
    private static partial Regex HandledEvent();

    [GeneratedRegex(@"\bTopics\.(?<member>[A-Z]\w*)")]
    private static partial Regex TopicReference();

    [GeneratedRegex(@"\b(?:new (?<event>[A-Z]\w*)|static (?<event>[A-Z]\w*) \w+)\(")]
    private static partial Regex PublishedEvent();

    [GeneratedRegex(@"GroupId(?: \+ ""|\})(?<suffix>-[a-z]+)""")]
    private static partial Regex OwnGroupSuffix();

    [GeneratedRegex(@"^\$\((?<name>[A-Za-z_][A-Za-z0-9_]*)\)$")]
    private static partial Regex VariableReference();
}
