"""The Kubernetes manifests: every overlay builds, validates strictly, and keeps the rules ops rely on."""

from __future__ import annotations

import base64
import copy
import importlib.util
import inspect
import os
import re
import runpy
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from gateway.storage import S3MediaStorage, object_storage
from services.common.clients import ServiceClients
from services.common.config import GRPC_PORTS, METRICS_PORTS, SERVICES, Env, ServiceSettings
from services.common.events import TOPICS
from services.common.kafka import LINGER_MS
from services.common.liveness import GRPC_SELF_CHECK_SECONDS, LIVENESS_PATH
from tests.deploy.helpers import K8S, OVERLAYS, ROOT, kustomize

Objects = list[dict[str, Any]]
OWN_IMAGES = {f"minimall/{name}" for name in (*SERVICES, "gateway")}
# The services whose HANDLERS their __main__ passes to ServiceApp: each runs a consumer Deployment.
CONSUMERS = {"user", "product", "member", "analytics"}


def of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def config_map(objects: Objects, prefix: str) -> dict[str, str]:
    """Data of the (hash-suffixed) ConfigMap kustomize generated from `prefix`."""
    matches = [o for o in of_kind(objects, "ConfigMap") if re.fullmatch(rf"{prefix}(-[a-z0-9]+)?", o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one ConfigMap {prefix}, found {[o['metadata']['name'] for o in matches]}"
    return matches[0]["data"]


def workloads(objects: Objects) -> Objects:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment, StatefulSet or Job, or of the Jobs a CronJob starts."""
    return obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"]["template"]


def runs_pods(objects: Objects) -> Objects:
    """Every object with a pod template: workloads, Jobs and CronJobs (the database backup)."""
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_template(obj)["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def own_deployments(objects: Objects) -> Objects:
    """Deployments that run a MiniMall image (not Redis)."""
    return [d for d in of_kind(objects, "Deployment")
            if _image_name(d["spec"]["template"]["spec"]["containers"][0]["image"]) in OWN_IMAGES]


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0].rsplit(":", 1)[0]
    return name.removeprefix("registry.example.com/")


def container_env(objects: Objects, container: dict[str, Any]) -> dict[str, str]:
    """The plain values a container sees: its ConfigMaps (envFrom) overridden by its own `env`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env |= named(objects, "ConfigMap", name)["data"]
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


def consul_variant() -> Objects:
    """prod with the opt-in Consul component, built from a temporary kustomization (kustomize wants relative paths)."""
    with tempfile.TemporaryDirectory() as tmp:
        up = os.path.relpath(K8S, tmp)
        (Path(tmp) / "kustomization.yaml").write_text(
            f"resources: [{up}/overlays/prod]\ncomponents: [{up}/components/consul]\n")
        return kustomize(Path(tmp))


def test_there_is_a_dev_and_a_prod_overlay() -> None:
    assert OVERLAYS == ["dev", "prod"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_builds_with_every_kind_of_object_it_needs(rendered: dict[str, Objects], overlay: str) -> None:
    kinds = {o["kind"] for o in rendered[overlay]}
    assert {"Namespace", "Deployment", "StatefulSet", "Job", "Service", "ServiceAccount", "ConfigMap",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Ingress"} <= kinds


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+consul"])
def test_every_rendered_object_validates_strictly_against_the_kubernetes_schemas(
        rendered: dict[str, Objects], overlay: str) -> None:
    objects = consul_variant() if overlay == "prod+consul" else rendered[overlay]
    version = kubernetes_validate.latest_version()
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}")
    assert errors == []


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, Objects]) -> None:
    deployment = copy.deepcopy(named(rendered["prod"], "Deployment", "gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_the_generated_base_files_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("deploy_k8s_generate", K8S / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    stale = [str(path.relative_to(ROOT)) for path, text in generate.files().items()
             if not path.exists() or path.read_text() != text]
    assert stale == [], "run `python deploy/k8s/generate.py` and commit the result"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_resources_and_a_non_root_read_only_security_context(
        rendered: dict[str, Objects], overlay: str) -> None:
    problems = []
    for deployment in of_kind(rendered[overlay], "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        if pod["securityContext"].get("runAsNonRoot") is not True or not pod["securityContext"].get("runAsUser"):
            problems.append(f"{name}: pod may run as root")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it does not need")
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: keeps Linux capabilities")
            for bound in ("requests", "limits"):
                if set(container.get("resources", {}).get(bound, {})) != {"cpu", "memory"}:
                    problems.append(f"{where}: no cpu and memory {bound}")
        for container in pod["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{name}/{container['name']}: no {probe}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_and_statefulset_is_covered_by_a_pod_disruption_budget(
        rendered: dict[str, Objects], overlay: str) -> None:
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind(rendered[overlay], "PodDisruptionBudget")]
    uncovered = []
    for workload in workloads(rendered[overlay]):
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if b.items() <= pod_labels.items()]
        if len(covering) != 1:
            uncovered.append(f"{workload['metadata']['name']}: {len(covering)} budgets")
    assert uncovered == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_spread_over_the_nodes_they_may_run_on_only(rendered: dict[str, Objects], overlay: str) -> None:
    """A spread constraint counts every node as a domain unless told to honour taints (nodeTaintsPolicy defaults to
    Ignore): a tainted node (control plane, a dedicated pool) holds 0 of the pods for ever, so with maxSkew 1 and
    DoNotSchedule (prod's servers and gateway) no untainted node may take a second one, and an HPA scaling past one
    pod per node leaves its new pods Pending."""
    problems = []
    for deployment in own_deployments(rendered[overlay]):
        for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            if constraint.get("nodeTaintsPolicy") != "Honor":
                problems.append(f"{deployment['metadata']['name']}: {constraint['whenUnsatisfiable']} counts tainted nodes")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_start_and_ready_on_native_grpc_probes_and_the_gateway_on_its_http_health_endpoints(
        rendered: dict[str, Objects], overlay: str) -> None:
    for service in SERVICES:
        container = named(rendered[overlay], "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": GRPC_PORTS[service]}, f"{service} {probe}"
    gateway = named(rendered[overlay], "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_are_live_while_their_jobs_beat_and_their_grpc_server_answers(
        rendered: dict[str, Objects], overlay: str) -> None:
    """A container has one liveness probe: the servers' asks /livez on the metrics port, which answers 503 once a
    job of the serve role has not come round within its bound, or the process's own gRPC server does not answer its
    health check within GRPC_SELF_CHECK_SECONDS (services/common/liveness.py); the probe waits longer than that."""
    probes = {}
    for service in SERVICES:
        container = named(rendered[overlay], "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": METRICS_PORTS[service]} in container["ports"]
        liveness = container["livenessProbe"]
        probes[service] = (liveness["httpGet"], liveness["timeoutSeconds"] > GRPC_SELF_CHECK_SECONDS)
    assert probes == dict.fromkeys(SERVICES, ({"path": LIVENESS_PATH, "port": "metrics"}, True))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_relays_and_consumers_are_live_while_their_loops_beat_and_ready_while_metrics_answer(
        rendered: dict[str, Objects], overlay: str) -> None:
    """/metrics answers from its own thread however stuck the relay or consumer loop is: liveness asks /livez, which
    answers 503 once a loop has not come round within its bound (services/common/liveness.py)."""
    probes = {}
    for name in [*(f"{s}-relay" for s in SERVICES), *(f"{s}-consumer" for s in CONSUMERS)]:
        container = named(rendered[overlay], "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": METRICS_PORTS[name.split("-")[0]]} in container["ports"]
        probes[name] = (container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"])
    expected = ({"path": "/metrics", "port": "metrics"}, {"path": LIVENESS_PATH, "port": "metrics"})
    assert probes == dict.fromkeys(probes, expected) and len(probes) == len(SERVICES) + len(CONSUMERS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployable_runs_its_role_servers_migrate_first_and_relays_and_consumers_wait_for_it(
        rendered: dict[str, Objects], overlay: str) -> None:
    """A relay or consumer of a new image started against the old schema fails its events (UndefinedColumn) while
    a migration is slow or failing: they wait until the database is at their image's head."""
    roles = {}
    for deployment in own_deployments(rendered[overlay]):
        pod = deployment["spec"]["template"]["spec"]
        roles[deployment["metadata"]["name"]] = (pod["containers"][0].get("args"),
                                                 [c.get("args") for c in pod.get("initContainers", [])])
    expected = {"gateway": (None, [])}
    for service in SERVICES:
        expected[service] = (["serve"], [["migrate"]])
        expected[f"{service}-relay"] = (["relay"], [["wait-migrated"]])
    for service in CONSUMERS:
        expected[f"{service}-consumer"] = (["consume"], [["wait-migrated"]])
    assert roles == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_containers_run_the_pods_image_against_the_pods_database(rendered: dict[str, Objects],
                                                                      overlay: str) -> None:
    for deployment in own_deployments(rendered[overlay]):
        pod = deployment["spec"]["template"]["spec"]
        main = pod["containers"][0]
        variable = f"{deployment['spec']['template']['metadata']['labels']['app.kubernetes.io/name'].upper()}_DATABASE_URL"
        for init in pod.get("initContainers", []):
            database = [[e for e in c["env"] if e["name"] == variable] for c in (init, main)]
            assert (init["image"], init["envFrom"], database[0]) == (main["image"], main["envFrom"], database[1]), \
                deployment["metadata"]["name"]
            assert len(database[0]) == 1
            secrets = {e["name"] for e in init["env"] if "secretKeyRef" in e.get("valueFrom", {})}
            assert {name for name in secrets if not name.startswith("KAFKA_SASL_")} == {variable}, \
                deployment["metadata"]["name"]  # no payment, identity or SMS key where only the schema is needed


class ReadsNoted(dict[str, str]):
    """An environment that notes the name of every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)


def common_settings_reads(service: str, key_file: Path) -> set[str]:
    """The variables ServiceSettings.from_env reads: all a relay, `migrate` and `wait-migrated` read
    (services/common/runtime.py builds nothing else of the service for them)."""
    environ = ReadsNoted({"JWT_PUBLIC_KEY_FILE": str(key_file)})
    ServiceSettings.from_env(service, environ)
    return environ.read


def secret_env(container: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["name"], e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def secret_files(pod: dict[str, Any], container: dict[str, Any]) -> set[tuple[str, str]]:
    """(secret, key) of every Secret file mounted in the container (key "*": the whole Secret)."""
    volumes = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    return {(volumes[m["name"]]["secretName"], item["key"])
            for m in container.get("volumeMounts", []) if m["name"] in volumes
            for item in volumes[m["name"]].get("items", [{"key": "*"}])
            if m.get("subPath", item["key"]) == item["key"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_relays_consumers_and_init_containers_hold_only_the_secrets_their_code_reads(
        rendered: dict[str, Objects], overlay: str, tmp_path: Path) -> None:
    """A relay only copies the outbox to Kafka, on ServiceSettings alone, as `migrate` and `wait-migrated` do, and a
    consumer only runs its handlers (services/<name>/__main__.py event_consumers): of the secrets their server holds,
    only the ones ServiceSettings.from_env reads (the database URL, the Kafka credentials), and a consumer whose
    handlers call a service its own SERVICE_TOKEN; of the Secret files only the JWT public keys ServiceSettings reads.
    No payment, provider or identity key, no JWT private key (the user consumer held the key that signs every token).
    Read from the code, so a setting the common settings start reading is given too."""
    objects = rendered[overlay]
    key_file = tmp_path / "jwt-public.pem"
    key_file.write_bytes(b"-")
    held, allowed = {}, {}
    for deployment in own_deployments(objects):
        service, component = (deployment["metadata"]["labels"][f"app.kubernetes.io/{k}"] for k in ("name", "component"))
        if service == "gateway":
            continue
        reads = common_settings_reads(service, key_file)
        server = named(objects, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        needed = {entry for entry in secret_env(server) if entry[0] in reads}
        assert {entry[0] for entry in needed} == {f"{service.upper()}_DATABASE_URL", "KAFKA_SASL_USERNAME",
                                                  "KAFKA_SASL_PASSWORD"}
        pod = deployment["spec"]["template"]["spec"]
        token = {entry for entry in secret_env(server) if entry[0] == "SERVICE_TOKEN"}
        for container in pod.get("initContainers", []) + (pod["containers"] if component != "server" else []):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            held[where] = (secret_env(container), secret_files(pod, container))
            calls = container["name"] == "consumer" and CONSUMER_CALLEES.get(service)
            allowed[where] = (needed | (token if calls else set()),
                              {("minimall-jwt", "jwt-public.pem"), ("minimall-jwt-previous", "jwt-public.pem")}
                              if {"JWT_PUBLIC_KEY_FILE", "JWT_PREVIOUS_PUBLIC_KEY_FILE"} <= reads else set())

    # migrate, each relay and consumer and their wait-migrated
    assert len(held) == 3 * len(SERVICES) + 2 * len(CONSUMERS)
    assert held == allowed


def test_every_service_with_event_handlers_has_its_consumers_deployed() -> None:
    """Named by hand on purpose: the generator once deployed analytics' consumers alone, so product, member and
    user never applied an event in Kubernetes (stock, points, coupons, browsing history)."""
    handlers = {service for service in SERVICES if importlib.util.find_spec(f"services.{service}.consumers")}
    assert handlers == CONSUMERS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_the_drain_and_the_threads_the_process_waits_for(rendered: dict[str, Objects], overlay: str) -> None:
    gunicorn = runpy.run_path(str(ROOT / "gateway" / "gunicorn.conf.py"))
    for deployment in own_deployments(rendered[overlay]):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = container_env(rendered[overlay], container)
        # services/common/runtime.py run_roles: once stopped, a service process waits for its threads up to Kafka's
        # delivery timeout + 5 s: a relay's or consumer's batch in flight, a server's jobs (a reconciliation round
        # asking WeChat Pay, the order service's live-settings watch in its 30 s Consul long poll)
        threads = (2 * int(env.get("KAFKA_REQUEST_TIMEOUT_MS", 0)) + LINGER_MS) / 1000 + 5
        if name == "gateway":
            pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
            needed = pre_stop + gunicorn["graceful_timeout"]
        elif container["args"] == ["serve"]:
            assert float(env["SHUTDOWN_DELAY_SECONDS"]) >= 5, f"{name}: endpoints need time to drop the pod"
            # the drain (NOT_SERVING, the delay, calls in flight), then the jobs
            needed = float(env["SHUTDOWN_DELAY_SECONDS"]) + float(env["SHUTDOWN_GRACE_SECONDS"]) + threads
        else:  # relay / consume: the batch in flight
            needed = threads
        assert pod["terminationGracePeriodSeconds"] > needed + 5, f"{name}: {needed}s of shutdown work"


# Written out here, independently of deploy/k8s/generate.py: who may open a gRPC connection to whom.
EXPECTED_CALLERS = {
    "user": {"gateway", "order", "member"},  # member: GetWechatPayer, for WeChat recharges and payouts
    "product": {"gateway", "order", "member"},  # member: ListCategories, checking a coupon template's categories
    # product: its reservation sweep asks which orders were paid; member: its checkout-hold expiry does
    "order": {"gateway", "product", "member"},
    "member": {"gateway", "order"},
    "analytics": {"gateway"},
}


def shared_callees(text: str) -> set[str]:
    """The services whose generated stubs the shared modules (services/common) imported at the top of a file in `text`
    import: services/common/orders.py asks the order service for the product and member services. A type imported
    under `if TYPE_CHECKING:` (indented) calls nothing; the stubs a shared module only names in its docs neither."""
    shared = [ROOT / "services" / "common" / f"{name}.py"
              for name in re.findall(r"^(?:from|import) services\.common\.(\w+)", text, re.M)]
    return {service for path in shared if path.exists()
            for service in re.findall(r"^from mall\.(\w+)\.v1\.\w+_pb2_grpc import", path.read_text(), re.M)}


def test_the_callers_written_here_are_the_ones_whose_code_uses_the_services_stubs() -> None:
    """The written-out table against the code, by a plain search for the generated stubs' names."""
    stubs = {f"{service.capitalize()}ServiceStub": service for service in SERVICES}
    used = {}
    for caller in ("gateway", *SERVICES):
        package = ROOT / ("gateway" if caller == "gateway" else f"services/{caller}")
        text = "\n".join(path.read_text() for path in package.rglob("*.py"))
        used[caller] = ({service for stub, service in stubs.items() if re.search(rf"\b{stub}\b", text)}
                        | shared_callees(text)) - {caller}
    assert {service: {caller for caller in used if service in used[caller]} for service in SERVICES} \
        == EXPECTED_CALLERS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_accept_grpc_only_from_the_gateway_and_their_callers_and_metrics_from_prometheus(
        rendered: dict[str, Objects], overlay: str) -> None:
    policies = of_kind(rendered[overlay], "NetworkPolicy")
    deny = named(policies, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for service in SERVICES:
        rules = named(policies, "NetworkPolicy", service)["spec"]["ingress"]
        by_port: dict[int, list[dict[str, Any]]] = {}
        for rule in rules:
            for port in rule["ports"]:
                by_port.setdefault(port["port"], []).extend(rule["from"])
        assert set(by_port) == {GRPC_PORTS[service], METRICS_PORTS[service]}
        callers = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in by_port[GRPC_PORTS[service]]}
        assert callers == EXPECTED_CALLERS[service]
        assert all("namespaceSelector" not in peer for peer in by_port[GRPC_PORTS[service]])
        assert by_port[METRICS_PORTS[service]] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_of_minimall_is_scraped_on_a_port_it_opens(rendered: dict[str, Objects], overlay: str) -> None:
    for deployment in own_deployments(rendered[overlay]):
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        ports = {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in ports, deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_the_code_knows_is_declared_with_partitions_and_retention(
        rendered: dict[str, Objects], overlay: str) -> None:
    text = named(rendered[overlay], "ConfigMap", "kafka-topics")["data"]["topics.txt"]
    rows = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert [row[0] for row in rows] == list(TOPICS)
    assert all(int(row[1]) >= 1 and int(row[2]) >= 3600_000 for row in rows), rows
    broker_env = container_env(rendered[overlay], named(rendered[overlay], "StatefulSet", "kafka")
                               ["spec"]["template"]["spec"]["containers"][0])
    assert broker_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # Committed offsets are kept well past the longest retention, so an idle group finds its gap (consumer.py).
    assert int(broker_env["KAFKA_OFFSETS_RETENTION_MINUTES"]) * 60_000 >= 4 * max(int(row[2]) for row in rows)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kraft_quorum_names_one_voter_per_broker(rendered: dict[str, Objects], overlay: str) -> None:
    replicas = named(rendered[overlay], "StatefulSet", "kafka")["spec"]["replicas"]
    voters = config_map(rendered[overlay], "kafka-config")["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{i}@kafka-{i}.kafka-headless:9093" for i in range(replicas)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_terminates_tls_and_the_gateway_trusts_exactly_its_one_hop(
        rendered: dict[str, Objects], overlay: str) -> None:
    ingress = named(rendered[overlay], "Ingress", "gateway")["spec"]
    hosts = [rule["host"] for rule in ingress["rules"]]
    assert [tls["hosts"] for tls in ingress["tls"]] == [hosts] and ingress["tls"][0]["secretName"]
    assert {route["backend"]["service"]["name"] for route in ingress["rules"][0]["http"]["paths"]} == {"gateway"}
    assert config_map(rendered[overlay], "minimall-config")["GATEWAY_PROXY_HOPS"] == "1"


def routed(ingress: dict[str, Any], path: str) -> bool:
    """Whether the Ingress sends `path` to a backend, by the Kubernetes rules: Exact is the whole path, Prefix a
    prefix of its "/"-separated elements (a trailing slash does not count)."""
    elements = [part for part in path.split("/") if part]
    for rule in ingress["spec"]["rules"]:
        for route in rule["http"]["paths"]:
            prefix = [part for part in route["path"].split("/") if part]
            if route["pathType"] == "Exact" and route["path"] == path:
                return True
            if route["pathType"] == "Prefix" and elements[:len(prefix)] == prefix:
                return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/docs", "/openapi.json", "/", "/metrics/"])
def test_the_ingress_does_not_publish_metrics_readiness_or_the_api_docs(
        rendered: dict[str, Objects], overlay: str, path: str) -> None:
    assert not routed(named(rendered[overlay], "Ingress", "gateway"), path)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("path", ["/api/v1/catalog/products", "/api/v1/auth/login/sms", "/admin", "/admin/",
                                  "/admin/admin.js", "/media/uploads/a.jpg", "/healthz"])
def test_the_ingress_publishes_the_api_the_console_media_and_liveness(
        rendered: dict[str, Objects], overlay: str, path: str) -> None:
    assert routed(named(rendered[overlay], "Ingress", "gateway"), path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_and_the_probes_reach_the_gateway_pod_itself(rendered: dict[str, Objects], overlay: str) -> None:
    pod = named(rendered[overlay], "Deployment", "gateway")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {port["containerPort"] for port in container["ports"]}
    annotations = pod["metadata"]["annotations"]
    assert (annotations["prometheus.io/path"], int(annotations["prometheus.io/port"]) in ports) == ("/metrics", True)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    scrape = yaml.safe_load((K8S / "monitoring" / "prometheus.yml").read_text())["scrape_configs"]
    minimall = next(job for job in scrape if job["job_name"] == "minimall")
    assert [sd["role"] for sd in minimall["kubernetes_sd_configs"]] == ["pod"]
    assert any(relabel.get("source_labels", [])[:1] == ["__meta_kubernetes_pod_ip"]
               and relabel.get("target_label") == "__address__" for relabel in minimall["relabel_configs"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_to_a_tag(rendered: dict[str, Objects], overlay: str) -> None:
    images = {c["image"] for w in runs_pods(rendered[overlay]) for c in containers(w)}
    assert images and all(":" in image and not image.endswith(":latest") for image in images), images


def test_prod_runs_its_own_images_by_tag_and_digest(rendered: dict[str, Objects]) -> None:
    """A tag can be pushed again: pods of one rollout, a rollback or a node pulling anew could run other bytes than
    the ones tested. The prod overlay names each own image's digest (a placeholder to set at each release)."""
    objects = rendered["prod"]
    images = {c["image"] for w in runs_pods(objects) for c in containers(w) if _image_name(c["image"]) in OWN_IMAGES}

    assert {_image_name(image) for image in images} == OWN_IMAGES
    assert [image for image in images
            if not re.fullmatch(r"registry\.example\.com/minimall/[a-z]+:[\w.-]+@sha256:[0-9a-f]{64}", image)] == []


def referenced_secrets(objects: Objects) -> set[str]:
    names = set()
    for obj in objects:
        if obj["kind"] == "Ingress":
            names |= {tls["secretName"] for tls in obj["spec"].get("tls", [])}
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        pod = pod_template(obj)["spec"]
        names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in pod.get("initContainers", []) + pod["containers"]:
            names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                      if "secretKeyRef" in e.get("valueFrom", {})}
    return names


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+consul"])
def test_no_secret_is_committed_and_the_docs_say_how_to_create_each_one(
        rendered: dict[str, Objects], overlay: str) -> None:
    objects = consul_variant() if overlay == "prod+consul" else rendered[overlay]
    generated = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
    for secret in generated.values():  # only dev's database URLs, which authenticate by trust
        assert secret["metadata"]["name"].startswith("minimall-database-") and overlay == "dev"
        for key, value in secret["data"].items():
            assert urlsplit(base64.b64decode(value).decode()).password is None, key
    docs = (K8S / "README.md").read_text()
    created_by_hand = referenced_secrets(objects) - set(generated)
    assert created_by_hand, "a deployment without any secret is not MiniMall"
    undocumented = sorted(name for name in created_by_hand if f"`{name}`" not in docs)
    assert undocumented == []


def test_only_dev_has_an_in_cluster_database_and_console_sms_prod_sends_through_aliyun(
        rendered: dict[str, Objects]) -> None:
    assert {s["metadata"]["name"] for s in of_kind(rendered["dev"], "StatefulSet")} == {"postgres", "kafka"}
    assert {s["metadata"]["name"] for s in of_kind(rendered["prod"], "StatefulSet")} == {"kafka"}
    assert config_map(rendered["dev"], "minimall-config")["SMS_PROVIDER"] == "console"
    assert config_map(rendered["dev"], "minimall-config")["MINIMALL_ENV"] == "dev"
    assert config_map(rendered["prod"], "minimall-config")["SMS_PROVIDER"] == "aliyun"
    assert config_map(rendered["prod"], "minimall-config")["MINIMALL_ENV"] == "prod"


def selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= pod_labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if pod_labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_network_policy_selects_pods_and_every_peer_it_admits_exists(
        rendered: dict[str, Objects], overlay: str) -> None:
    pods = [(w["metadata"]["name"], pod_template(w)["metadata"]["labels"]) for w in runs_pods(rendered[overlay])]
    problems = []
    for policy in of_kind(rendered[overlay], "NetworkPolicy"):
        name = policy["metadata"]["name"]
        if not any(selects(policy["spec"]["podSelector"], labels) for _, labels in pods):
            problems.append(f"{name} protects no pod")
        rules = [rule["from"] for rule in policy["spec"].get("ingress", [])]
        rules += [rule["to"] for rule in policy["spec"].get("egress", [])]
        for peers in rules:
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer and \
                        not any(selects(peer["podSelector"], labels) for _, labels in pods):
                    problems.append(f"{name} admits {peer['podSelector']}, which no pod matches")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_the_pods_of_one_workload(rendered: dict[str, Objects], overlay: str) -> None:
    pods = [(w["metadata"]["name"], w["spec"]["template"]["metadata"]["labels"]) for w in workloads(rendered[overlay])]
    for service in of_kind(rendered[overlay], "Service"):
        chosen = [name for name, labels in pods if selects({"matchLabels": service["spec"]["selector"]}, labels)]
        assert len(chosen) == 1, f"Service {service['metadata']['name']} selects {chosen}"


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1 / 1024, "m": 1, "g": 1024}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kafka_jvm_heap_leaves_room_under_its_memory_limit(rendered: dict[str, Objects], overlay: str) -> None:
    checked = 0
    for workload in workloads(rendered[overlay]) + of_kind(rendered[overlay], "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            env = container_env(rendered[overlay], container)
            if "KAFKA_HEAP_OPTS" not in env:
                continue
            heap = mebibytes(re.search(r"-Xmx(\S+)", env["KAFKA_HEAP_OPTS"]).group(1))  # type: ignore[union-attr]
            limit = mebibytes(container["resources"]["limits"]["memory"])
            assert heap <= 0.75 * limit, f"{workload['metadata']['name']}: heap {heap} MiB, limit {limit} MiB"
            checked += 1
    assert checked == 2  # the brokers and the topics Job


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_hpa_scales_a_deployment_that_leaves_its_replica_count_to_it(
        rendered: dict[str, Objects], overlay: str) -> None:
    scaled = {}
    for hpa in of_kind(rendered[overlay], "HorizontalPodAutoscaler"):
        target = named(rendered[overlay], "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "kubectl apply would reset what the HPA chose"
        scaled[target["metadata"]["name"]] = hpa["spec"]["minReplicas"]
    assert set(scaled) == {"gateway", *SERVICES}
    assert set(scaled.values()) == ({1} if overlay == "dev" else {3})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_statefulsets_and_jobs_run_non_root_with_resources_and_without_privilege(
        rendered: dict[str, Objects], overlay: str) -> None:
    problems = []
    for workload in [o for o in runs_pods(rendered[overlay]) if o["kind"] != "Deployment"]:
        name = workload["metadata"]["name"]
        pod = pod_template(workload)["spec"]
        if pod["securityContext"].get("runAsNonRoot") is not True:
            problems.append(f"{name}: may run as root")
        for container in pod["containers"]:
            security = container["securityContext"]
            if security.get("allowPrivilegeEscalation") is not False or security["capabilities"]["drop"] != ["ALL"]:
                problems.append(f"{name}: privileged")
            if set(container["resources"]["limits"]) != {"cpu", "memory"}:
                problems.append(f"{name}: no limits")
            if workload["kind"] == "StatefulSet" and "readinessProbe" not in container:
                problems.append(f"{name}: no readinessProbe")
    assert problems == []


def pod_templates(objects: Objects) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']} {o['metadata']['name']}", pod_template(o)["spec"]) for o in runs_pods(objects)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_pod_gets_the_service_link_variables_of_the_namespace(rendered: dict[str, Objects], overlay: str) -> None:
    """Kubernetes gives every pod KAFKA_PORT=tcp://<ip>:9092, KAFKA_SERVICE_HOST, REDIS_PORT... for each Service with
    a cluster IP unless told not to, and the apache/kafka image writes every KAFKA_* variable into the broker's
    server.properties (`port=tcp://...`, `service.host=...`); no process here reads them."""
    assert [name for name, pod in pod_templates(rendered[overlay]) if pod.get("enableServiceLinks") is not False] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_empty_dir_is_bounded(rendered: dict[str, Objects], overlay: str) -> None:
    """An unbounded emptyDir lets one pod fill its node's disk (or memory) and get its neighbours evicted."""
    assert [f"{name}: {volume['name']}" for name, pod in pod_templates(rendered[overlay])
            for volume in pod.get("volumes", []) if "emptyDir" in volume and "sizeLimit" not in volume["emptyDir"]] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_brokers_may_reach_each_other_on_the_inter_broker_and_controller_listeners(
        rendered: dict[str, Objects], overlay: str) -> None:
    """Replication runs on KAFKA_INTER_BROKER_LISTENER_NAME's port: a policy letting brokers meet only on the
    controller's would stop every follower fetching (prod: 3 brokers, min.insync.replicas 2) wherever it is enforced."""
    objects = rendered[overlay]
    env = container_env(objects, named(objects, "StatefulSet", "kafka")["spec"]["template"]["spec"]["containers"][0])
    ports = {name: int(address.rsplit(":", 1)[1]) for name, address in
             (listener.split("://") for listener in env["KAFKA_LISTENERS"].split(","))}
    policy = named(objects, "NetworkPolicy", "kafka")["spec"]
    from_brokers = {port["port"] for rule in policy["ingress"] for peer in rule["from"]
                    if peer.get("podSelector", {}).get("matchLabels") == policy["podSelector"]["matchLabels"]
                    for port in rule["ports"]}

    assert {ports[env["KAFKA_INTER_BROKER_LISTENER_NAME"]], ports[env["KAFKA_CONTROLLER_LISTENER_NAMES"]]} <= from_brokers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_brokers_never_share_a_node(rendered: dict[str, Objects], overlay: str) -> None:
    """Topics keep KAFKA_DEFAULT_REPLICATION_FACTOR replicas and take writes with KAFKA_MIN_INSYNC_REPLICAS of them
    (prod: 3 and 2): two brokers on one node would make that node's loss stop every producer."""
    objects = rendered[overlay]
    brokers = named(objects, "StatefulSet", "kafka")
    pod_labels = brokers["spec"]["template"]["metadata"]["labels"]
    terms = brokers["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", [])

    assert [term for term in terms if term["topologyKey"] == "kubernetes.io/hostname"
            and term["labelSelector"]["matchLabels"].items() <= pod_labels.items()] != []
    if overlay == "prod":
        config = config_map(objects, "kafka-config")
        assert (brokers["spec"]["replicas"], config["KAFKA_DEFAULT_REPLICATION_FACTOR"],
                config["KAFKA_MIN_INSYNC_REPLICAS"]) == (3, "3", "2")


def test_the_consul_component_points_servers_and_gateway_at_consul_and_lets_its_health_checks_in() -> None:
    objects = consul_variant()
    assert config_map(objects, "minimall-config")["CONSUL_HTTP_ADDR"] == "http://consul-server.consul.svc:8500"
    with_token = sorted(d["metadata"]["name"] for d in own_deployments(objects)
                        if any(e["name"] == "CONSUL_HTTP_TOKEN" for e in d["spec"]["template"]["spec"]["containers"][0]["env"]))
    assert with_token == sorted(["gateway", *SERVICES, *(f"{app}-consumer" for app in CONSUMER_CALLEES)])
    checks = named(objects, "NetworkPolicy", "consul-health-checks")["spec"]
    assert {p["port"] for p in checks["ingress"][0]["ports"]} == set(GRPC_PORTS.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_callers_balance_grpc_calls_over_every_ready_pod_of_a_headless_service(
        rendered: dict[str, Objects], overlay: str) -> None:
    config = config_map(rendered[overlay], "minimall-config")
    for service in SERVICES:
        assert named(rendered[overlay], "Service", service)["spec"]["clusterIP"] == "None", service
        assert config[f"{service.upper()}_GRPC_TARGET"] == f"dns:///{service}:{GRPC_PORTS[service]}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_can_verify_with_the_previous_jwt_key_during_a_rotation(
        rendered: dict[str, Objects], overlay: str) -> None:
    path = config_map(rendered[overlay], "minimall-config")["JWT_PREVIOUS_PUBLIC_KEY_FILE"]
    for deployment in own_deployments(rendered[overlay]):
        pod = deployment["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "minimall-jwt-previous")
        assert volume["secret"]["optional"] is True  # the secret exists only while a rotation runs
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert path == f"{mounts[volume['name']]}/jwt-public.pem", deployment["metadata"]["name"]


def egress_of(objects: Objects, pod_labels: dict[str, str]) -> set[tuple[str, int]]:
    """(destination, port) pairs the egress policies selecting a pod allow: a pod name, namespace/pod or CIDR."""
    allowed = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        if "Egress" not in policy["spec"]["policyTypes"] or not selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"]["egress"]:
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    target = peer["ipBlock"]["cidr"]
                elif "namespaceSelector" in peer:
                    namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    pod = peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app", "*")
                    target = f"{namespace}/{pod}"
                else:
                    target = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                allowed |= {(target, port["port"]) for port in rule["ports"]}
    return allowed


# Written out here, independently of generate.py: whom each deployable may open connections to.
DNS = {("kube-system/kube-dns", 53)}
CALLEES = {"gateway": set(SERVICES), "order": {"user", "product", "member"}, "product": {"order"},
           "member": {"user", "product", "order"}}
# user: WeChat login, Aliyun SMS, FaceID; order: WeChat Pay; member: WeChat Pay, Alipay, bank transfers (recharges,
# their reconciliation and expiry, withdrawal payouts)
HTTPS_OUT = {"user", "order", "member"}
# The consumers whose handlers call services: product's order-paid handler asks the order service whether the units
# it would release were sold (services/product/service.py _released_before_ledger_sold, services/common/orders.py).
# Member's order-paid handler asks the user service (HasPhone, as the member service) whether a buyer an order would
# join has bound a phone (services/member/phones.py); only its serve role's checkout-hold expiry asks the order service.
CONSUMER_CALLEES = {"product": {"order"}, "member": {"user"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployable_may_reach_only_dns_its_database_kafka_and_the_peers_it_calls(
        rendered: dict[str, Objects], overlay: str) -> None:
    database = {("postgres", 5432)} if overlay == "dev" else {("10.0.0.0/8", 5432)}
    problems = []
    for deployment in own_deployments(rendered[overlay]):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        app, component = pod_labels["app.kubernetes.io/name"], pod_labels["app.kubernetes.io/component"]
        peers = {(peer, GRPC_PORTS[peer]) for peer in CALLEES.get(app, set())}
        if app == "gateway":  # Kafka: the catalogue cache's product-changed listener; HTTPS: the media object store
            expected = DNS | peers | {("redis", 6379), ("kafka", 9092), ("0.0.0.0/0", 443)}
        elif component == "server":
            expected = DNS | peers | database | ({("0.0.0.0/0", 443)} if app in HTTPS_OUT else set())
        elif component == "consumer":  # the processed events table, Kafka and the peers its handlers call
            expected = DNS | database | {("kafka", 9092)} | {(p, GRPC_PORTS[p]) for p in CONSUMER_CALLEES.get(app, ())}
        else:  # relay: the outbox and Kafka
            expected = DNS | database | {("kafka", 9092)}
        allowed = egress_of(rendered[overlay], pod_labels)
        if allowed != expected:
            problems.append(f"{deployment['metadata']['name']}: extra {allowed - expected}, missing {expected - allowed}")
    assert problems == []


def test_with_consul_the_servers_the_gateway_and_the_consumers_that_call_services_may_also_reach_consul() -> None:
    objects = consul_variant()
    for deployment in own_deployments(objects):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        app, component = pod_labels["app.kubernetes.io/name"], pod_labels["app.kubernetes.io/component"]
        reaches = {("consul/*", 8500), ("consul/*", 8501)} <= egress_of(objects, pod_labels)
        assert reaches == (component in ("server", "gateway") or (component == "consumer" and app in CONSUMER_CALLEES)), \
            pod_labels


def consumer_callees_in_code(service: str) -> set[str]:
    """The services whose stubs the consumer role's code names: consumers.py and, transitively, the modules of its
    service it imports, and those the shared modules they import call (`shared_callees`); a plain search, independent
    of generate.py's import reading."""
    stubs = {f"{other.capitalize()}ServiceStub": other for other in SERVICES}
    seen: set[Path] = set()
    pending = [ROOT / "services" / service / "consumers.py"]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text()
        names = re.findall(rf"^(?:from|import) services\.{service}\.(\w+)", text, re.M) + [
            name.strip() for names in re.findall(rf"^from services\.{service} import (.+)$", text, re.M)
            for name in names.split(",")]
        pending += [f for f in (ROOT / "services" / service / f"{name}.py" for name in names) if f.exists()]
    text = "\n".join(path.read_text() for path in seen)
    return ({other for stub, other in stubs.items() if re.search(rf"\b{stub}\b", text)} | shared_callees(text)) - {
        service}


def test_the_consumer_callees_written_here_are_the_ones_whose_stubs_the_handlers_code_uses() -> None:
    assert {s: consumer_callees_in_code(s) for s in CONSUMERS if consumer_callees_in_code(s)} == CONSUMER_CALLEES


def admits(objects: Objects, service: str, pod_labels: dict[str, str]) -> bool:
    """Whether an ingress policy of the service's server pods lets pods with `pod_labels` (same namespace) in on
    its gRPC port."""
    server = {"app.kubernetes.io/name": service, "app.kubernetes.io/component": "server"}
    return any(
        selects(peer["podSelector"], pod_labels) and "namespaceSelector" not in peer
        for policy in of_kind(objects, "NetworkPolicy")
        if "Ingress" in policy["spec"]["policyTypes"] and selects(policy["spec"]["podSelector"], server)
        for rule in policy["spec"].get("ingress", [])
        if any(port["port"] == GRPC_PORTS[service] for port in rule.get("ports", []))
        for peer in rule.get("from", []) if "podSelector" in peer)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_a_consumers_handlers_call_is_reachable_from_its_pods_with_its_address_and_token(
        rendered: dict[str, Objects], overlay: str) -> None:
    """A consumer whose handler cannot reach the service it asks times out on each such event and retries it for
    ever, stalling its partition: its own egress, the callee's ingress, the callee's address and the token it calls
    with must all be there."""
    objects = rendered[overlay]
    problems = []
    for app in sorted(CONSUMERS):
        deployment = named(objects, "Deployment", f"{app}-consumer")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for callee in sorted(consumer_callees_in_code(app)):
            if (callee, GRPC_PORTS[callee]) not in egress_of(objects, pod_labels):
                problems.append(f"{app}-consumer may not open connections to {callee}")
            if not admits(objects, callee, pod_labels):
                problems.append(f"{callee} does not let {app}-consumer in")
            if f"{callee.upper()}_GRPC_TARGET" not in container_env(objects, container):
                problems.append(f"{app}-consumer has no {callee.upper()}_GRPC_TARGET")
            if "SERVICE_TOKEN" not in {e["name"] for e in container["env"]}:
                problems.append(f"{app}-consumer has no SERVICE_TOKEN to call {callee} as {app}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_order_product_and_member_services_hold_a_service_token_each_its_own(
        rendered: dict[str, Objects], overlay: str) -> None:
    """services/common/auth.py: a pod never holds another service's token, and the gateway none at all."""
    holders = {}
    for deployment in own_deployments(rendered[overlay]):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            for entry in container.get("env", []):
                if entry["name"] == "SERVICE_TOKEN":
                    ref = entry["valueFrom"]["secretKeyRef"]
                    holders[deployment["metadata"]["name"]] = (ref["name"], ref["key"], ref.get("optional", False))

    assert holders == {name: (f"minimall-service-token-{name.split('-')[0]}", "token", False)
                       for name in ("order", "product", "product-consumer", "member", "member-consumer")}


def test_providers_are_called_by_the_services_that_get_https_out() -> None:
    """The services whose code imports an HTTP client for a payment or identity provider (its own, or the shared
    WeChat Pay, Alipay and bank clients) are the ones written out in HTTPS_OUT."""
    providers = ("wechatpay", "alipay", "bankcard")
    calling = set()
    for service in SERVICES:
        text = "\n".join(path.read_text() for path in (ROOT / "services" / service).rglob("*.py"))
        if re.search(r"^import requests\b", text, re.M) or "provider_url" in text or any(
                re.search(rf"^from services\.common(\.{name} import| import .*\b{name}\b)", text, re.M)
                for name in providers):
            calling.add(service)
    assert calling == HTTPS_OUT


def gateway_container(objects: Objects) -> dict[str, Any]:
    return named(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_not_killed_for_waiting_on_a_slow_service(rendered: dict[str, Objects], overlay: str) -> None:
    """/healthz waits for a thread of the worker like any request (gunicorn gthread): with every thread held the full
    gRPC deadline by a slow service, it waits about one deadline. A liveness timeout shorter than that restarts every
    gateway while one service is slow, dropping all requests in flight and spreading the outage to the whole API."""
    container = gateway_container(rendered[overlay])
    deadline = int(config_map(rendered[overlay], "minimall-config")["GATEWAY_GRPC_TIMEOUT_MS"]) / 1000
    assert container["livenessProbe"]["timeoutSeconds"] > deadline


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateways_readiness_waits_for_every_service_it_asks_about(rendered: dict[str, Objects], overlay: str) -> None:
    """/readyz asks every service's gRPC health in turn, each up to its deadline (ServiceClients.health), and lists
    them all. With the probe's default 1 s, one service not answering (analytics, not in GATEWAY_READY_REQUIRES)
    made every gateway unready: the whole API out of rotation for a service it does not need."""
    probe = gateway_container(rendered[overlay])["readinessProbe"]
    per_service = inspect.signature(ServiceClients.health).parameters["timeout_seconds"].default
    assert probe.get("timeoutSeconds", 1) > len(SERVICES) * per_service


def test_database_dumps_never_go_to_the_bucket_the_cdn_publishes(rendered: dict[str, Objects]) -> None:
    """The dumps hold phones and addresses under guessable keys: a bucket of their own, private, not the media one."""
    config = config_map(rendered["prod"], "minimall-config")

    assert (config["BACKUP_S3_BUCKET"], config["MEDIA_S3_BUCKET"]) == ("minimall-backups", "minimall-media")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_uploads_go_where_every_gateway_replica_finds_them(rendered: dict[str, Objects], overlay: str) -> None:
    """The root filesystem is read-only: LocalMediaStorage's default var/media there fails every upload, and a
    pod's own directory is not another replica's."""
    objects = rendered[overlay]
    container = gateway_container(objects)
    env = container_env(objects, container)
    store = object_storage(Env(env))
    if overlay == "prod":
        assert isinstance(store, S3MediaStorage)
        assert (store.bucket, store.public_url) == ("minimall-media", "https://media.example.com")
        keys = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"].startswith("AWS_")}
        assert keys == {
            "AWS_ACCESS_KEY_ID": {"name": "minimall-media", "key": "access-key-id", "optional": True},
            "AWS_SECRET_ACCESS_KEY": {"name": "minimall-media", "key": "secret-access-key", "optional": True}}
    else:
        assert store is None
        pod = named(objects, "Deployment", "gateway")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == env["MEDIA_DIR"]]
        assert "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly", False)
        assert named(objects, "HorizontalPodAutoscaler", "gateway")["spec"]["maxReplicas"] == 1


def mounting(objects: Objects, claim: str) -> list[dict[str, Any]]:
    return [d for d in of_kind(objects, "Deployment")
            if any(v.get("persistentVolumeClaim", {}).get("claimName") == claim
                   for v in d["spec"]["template"]["spec"].get("volumes", []))]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_claim_can_be_bound_for_every_pod_that_mounts_it(rendered: dict[str, Objects], overlay: str) -> None:
    """The clouds' default storage classes (EKS gp2/gp3, GKE standard-rwo, AKS managed-csi, kind standard) are
    ReadWriteOnce: a ReadWriteMany claim without a class that offers it stays Pending, and its pods with it.
    prod names one (a placeholder to replace); dev takes a ReadWriteOnce claim of the default class, one pod."""
    objects = rendered[overlay]
    claims = {c["metadata"]["name"]: c["spec"] for c in of_kind(objects, "PersistentVolumeClaim")}
    assert set(claims) == {"analytics-reports"}
    for name, spec in claims.items():
        [deployment] = mounting(objects, name)
        if overlay == "prod":
            assert (spec["accessModes"], spec.get("storageClassName")) == (["ReadWriteMany"], "efs-sc")
        else:
            assert (spec["accessModes"], spec.get("storageClassName")) == (["ReadWriteOnce"], None)
            hpa = named(objects, "HorizontalPodAutoscaler", deployment["metadata"]["name"])
            assert hpa["spec"]["maxReplicas"] == 1


def backup_job(objects: Objects) -> dict[str, Any]:
    return named(objects, "CronJob", "db-backup")


def test_prod_dumps_every_service_database_nightly_one_run_at_a_time(rendered: dict[str, Objects]) -> None:
    """Money lives in the order and member databases: a backup that leaves a service's database out, or two runs on
    the same databases at once (a slow night), is found here rather than on the day of a restore."""
    cron = backup_job(rendered["prod"])
    job = cron["spec"]["jobTemplate"]["spec"]
    [dump] = pod_template(cron)["spec"]["initContainers"]
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in dump["env"]}

    assert (cron["spec"]["concurrencyPolicy"], cron["spec"]["schedule"].split()[2:]) == ("Forbid", ["*", "*", "*"])
    assert job["backoffLimit"] >= 1 and 0 < job["activeDeadlineSeconds"] < 24 * 3600
    assert "--format=custom" in dump["args"][0]
    assert env.pop("BACKUP_DATABASES").split() == list(SERVICES)
    # A read-only role's URLs (deploy/k8s/README.md, minimall-backup-database), never the services' own logins
    assert env == {f"{s.upper()}_DATABASE_URL": {"name": "minimall-backup-database", "key": s} for s in SERVICES}


def test_the_backup_pod_runs_non_root_read_only_without_capabilities_and_within_its_resources(
        rendered: dict[str, Objects]) -> None:
    cron = backup_job(rendered["prod"])
    pod = pod_template(cron)["spec"]
    problems = []
    if pod["securityContext"].get("runAsNonRoot") is not True or pod.get("automountServiceAccountToken") is not False:
        problems.append("pod: may run as root or mounts a service account token")
    for container in containers(cron):
        security = container["securityContext"]
        if (security.get("readOnlyRootFilesystem"), security.get("allowPrivilegeEscalation"),
                security.get("capabilities", {}).get("drop")) != (True, False, ["ALL"]):
            problems.append(f"{container['name']}: {security}")
        if any(not {"cpu", "memory"} <= set(container["resources"].get(bound, {})) for bound in ("requests", "limits")):
            problems.append(f"{container['name']}: no cpu and memory requests and limits")
        if [m["mountPath"] for m in container["volumeMounts"]] != ["/backup"]:
            problems.append(f"{container['name']}: not on the dump directory")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert problems == [] and "emptyDir" in volumes["backup"]


def test_the_backup_may_reach_only_dns_the_database_the_services_reach_and_https_outside(
        rendered: dict[str, Objects]) -> None:
    """The object store over HTTPS, as the gateway's media uploads; the database at database-egress.yaml's address."""
    objects = rendered["prod"]
    pod_labels = pod_template(backup_job(objects))["metadata"]["labels"]
    database = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"])
                for rule in named(objects, "NetworkPolicy", "database-egress")["spec"]["egress"]}

    assert egress_of(objects, pod_labels) == DNS | database | {("0.0.0.0/0", 443)}
