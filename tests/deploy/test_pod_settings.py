"""Every MiniMall process the overlays deploy gets through its own start-up code with the environment its pod has.

For each container of each Deployment: the ConfigMaps and env of the rendered overlay, the Secrets
deploy/k8s/README.md says to create (plausible fakes: real key formats, minted tokens), and mounted Secrets
written under a temporary directory with the paths pointing into it. Then the code the process runs before it
serves: `ServiceSettings.from_env` (`migrate`, `wait-migrated` and the relay stop there), a consumer's
`event_consumers`, the server's own `build_app`
(its settings, providers, channels, service identity; no server started, nothing connected), and for the gateway
what gateway/wsgi.py does. A rendered manifest that passes kubernetes-validate can still crash-loop on a missing
setting; this is where that shows.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import SERVICES, Env, KafkaSettings, ServiceSettings
from services.common.db import make_engine
from services.common.events import TOPICS
from services.member.config import MemberServiceSettings
from services.order.config import OrderServiceSettings
from services.user.tokens import mint_service_token
from tests.deploy.helpers import K8S, OVERLAYS, kustomize

Objects = list[dict[str, Any]]
Secrets = dict[str, dict[str, bytes]]
PUBLIC_ORIGIN = "https://shop.example.com"  # the prod Ingress's host
PLATFORM_SERIAL = "PUB_KEY_ID_0114232134912410000000000000000000"
# Every MiniMall process that talks to Kafka, each as its own SCRAM user: the services' relays and consumers, and
# the gateway (its catalogue cache follows product-changed).
KAFKA_CLIENTS = (*SERVICES, "gateway")


def pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def readme_secrets() -> Secrets:
    """Every secret deploy/k8s/README.md's table says to create, each key with a value of the kind it asks for."""
    jwt_key = ed25519.Ed25519PrivateKey.generate()
    merchant, platform, app, alipay = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4))
    now = datetime.now(UTC)
    fakes: dict[str, dict[str, str | bytes]] = {
        "minimall-jwt": {"jwt-private.pem": pem_private(jwt_key), "jwt-public.pem": pem_public(jwt_key)},
        "minimall-jwt-previous": {"jwt-public.pem": pem_public(ed25519.Ed25519PrivateKey.generate())},
        "minimall-gateway": {"redis-url": "redis://redis:6379/0", "rate-limit-secret": "r" * 64},
        "minimall-database": {s: f"postgresql+psycopg://mall_{s}:pw@db.internal:5432/minimall_{s}?sslmode=require"
                              for s in SERVICES},
        "minimall-tls": {"tls.crt": "-", "tls.key": "-"},
        "minimall-dev-tls": {"tls.crt": "-", "tls.key": "-"},
        "minimall-user-providers": {"aliyun-sms-access-key-id": "LTAI5tFakeFakeFake", "aliyun-sms-access-key-secret":
                                    "s" * 30, "wechat-app-secret": "a" * 32, "realname-secret-id": "AKIDfake",
                                    "realname-secret-key": "k" * 32},
        "minimall-user-identity": {"identity-keys": "k1:" + base64.b64encode(b"\x01" * 32).decode(),
                                   "fingerprint-key": base64.b64encode(b"\x02" * 32).decode()},
        "minimall-wechatpay": {"apiv3-key": "v" * 32, "merchant-serial": "5157F09EFDC096DE15EBE81A47057A72",
                               "merchant-key.pem": pem_private(merchant), "platform.pem": pem_public(platform),
                               "platform-certs": f"{PLATFORM_SERIAL}:/etc/minimall/wechatpay/platform.pem"},
        "minimall-alipay": {"app-private-key.pem": pem_private(app), "alipay-public-key.pem": pem_public(alipay)},
        "minimall-bankcard": {"secret": "b" * 40},
        "minimall-media": {"access-key-id": "AKIAFAKEFAKEFAKE", "secret-access-key": "m" * 40},
        "minimall-backup": {"access-key-id": "AKIAFAKEFAKEBACKUP", "secret-access-key": "b" * 40},
        "minimall-backup-database": {s: f"postgresql+psycopg://mall_backup:pw@db.internal:5432/minimall_{s}"
                                        "?sslmode=require" for s in SERVICES},
        "minimall-kafka": {f"{s}-{part}": f"minimall-{s}" for s in (*KAFKA_CLIENTS, "topics", "exporter")
                           for part in ("username", "password")},
        "minimall-service-token-order": {"token": mint_service_token(pem_private(jwt_key), "order", now=now,
                                                                     ttl=timedelta(days=90))},
        "minimall-service-token-product": {"token": mint_service_token(pem_private(jwt_key), "product", now=now,
                                                                       ttl=timedelta(days=90))},
        "minimall-service-token-member": {"token": mint_service_token(pem_private(jwt_key), "member", now=now,
                                                                      ttl=timedelta(days=90))},
        "minimall-consul": {"token": "c" * 36},
        "minimall-consul-tls": {"ca.pem": "-", "client.pem": "-", "client-key.pem": "-"},
    }
    documented = documented_secrets()
    assert {name: sorted(keys) for name, keys in fakes.items()} == {
        name: sorted(keys) for name, keys in documented.items()}, "a README secrets row without a fake, or a fake too many"
    return {name: {key: value if isinstance(value, bytes) else value.encode() for key, value in keys.items()}
            for name, keys in fakes.items()}


def documented_secrets() -> dict[str, set[str]]:
    """deploy/k8s/README.md "Secrets": secret name -> the keys its row lists (`<service>-username` expanded)."""
    section = (K8S / "README.md").read_text().split("## Secrets", 1)[1].split("\n## ", 1)[0]
    secrets = {}
    for row in re.findall(r"^\| `(minimall-[a-z0-9-]+)` \| ([^|]+) \|", section, flags=re.MULTILINE):
        keys = set(re.findall(r"`([^`]+)`", row[1]))
        if "<service>-username" in keys:
            keys = {key for key in keys if not key.startswith("<service>-")} | {
                f"{s}-{part}" for s in KAFKA_CLIENTS for part in ("username", "password")}
        secrets[row[0]] = keys
    return secrets


# README rows for a configuration these overlays do not have (SASL brokers): creating one alone is refused at start.
NOT_AS_SHIPPED = frozenset({"minimall-kafka"})


def secrets_in(objects: Objects, readme: Secrets, *, missing: frozenset[str] | set[str] = NOT_AS_SHIPPED) -> Secrets:
    """What the namespace holds: the README's secrets but the `missing` ones, and the overlay's generated ones."""
    generated = {s["metadata"]["name"]: {k: base64.b64decode(v) for k, v in s.get("data", {}).items()}
                 for s in objects if s["kind"] == "Secret"}
    return {name: keys for name, keys in readme.items() if name not in missing} | generated


def required_secrets(objects: Objects) -> set[str]:
    names = set()
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        names |= {v["secret"]["secretName"] for v in pod.get("volumes", [])
                  if "secret" in v and not v["secret"].get("optional")}
        for container in pod.get("initContainers", []) + pod["containers"]:
            names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                      if "secretKeyRef" in e.get("valueFrom", {}) and not e["valueFrom"]["secretKeyRef"].get("optional")}
    return names


def pod_environment(objects: Objects, pod: dict[str, Any], container: dict[str, Any], secrets: Secrets,
                    root: Path) -> dict[str, str]:
    """The container's environment as the kubelet gives it, its mounted Secrets written under `root`.

    pytest.fail where the kubelet would not start the container (a required Secret or key missing)."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environ |= config_maps[source["configMapRef"]["name"]]
    for entry in container.get("env", []):
        if "value" in entry:
            environ[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                pytest.fail(f"{container['name']}: secret {ref['name']} key {ref['key']} missing: the pod never starts")
            if value is not None:
                environ[entry["name"]] = value.decode()
        elif "fieldRef" in entry["valueFrom"]:
            environ[entry["name"]] = "10.0.0.7"  # status.podIP
        else:
            ref = entry["valueFrom"]["configMapKeyRef"]
            value = config_maps[ref["name"]].get(ref["key"])
            if value is None and not ref.get("optional"):
                pytest.fail(f"{container['name']}: config map {ref['name']} key {ref['key']} missing: never starts")
            if value is not None:
                environ[entry["name"]] = value
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mount_paths = []
    for mount in container.get("volumeMounts", []):
        directory = root / mount["mountPath"].lstrip("/")
        # A subPath mount is the one file (or directory) of the volume at that path; else the volume's directory.
        (directory.parent if "subPath" in mount else directory).mkdir(parents=True, exist_ok=True)
        mount_paths.append(mount["mountPath"])
        secret = volumes[mount["name"]].get("secret")
        if secret is None:  # emptyDir, claims: an empty directory
            continue
        data = secrets.get(secret["secretName"])
        if data is None:
            assert secret.get("optional"), f"{container['name']}: secret {secret['secretName']} missing: never starts"
            continue
        for item in secret.get("items", [{"key": key, "path": key} for key in data]):
            if "subPath" not in mount:
                (directory / item["path"]).write_bytes(data[item["key"]])
            elif mount["subPath"] == item["path"]:
                directory.write_bytes(data[item["key"]])
    # Every value naming a mounted path (KEY_FILE, serial:path lists, ...) points under `root`, in one pass.
    mounted = "|".join(re.escape(path) for path in sorted(mount_paths, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/.])({mounted})(?=/|$|,)")
    return {name: pattern.sub(lambda m: str(root) + m.group(1), value) if mounted else value
            for name, value in environ.items()}


@contextmanager
def process_environment(environ: Mapping[str, str]) -> Iterator[None]:
    """os.environ is the pod's while the start-up code runs (it reads Env() too, not only what it is handed)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_up(name: str, container: dict[str, Any], environ: Mapping[str, str]) -> None:
    """What the container's process runs before serving: services/common/runtime.py main up to run_roles, or
    gateway/wsgi.py up to starting its listener."""
    with process_environment(environ):
        if name == "gateway":
            settings = GatewaySettings.from_env()
            create_app(settings)
            if "KAFKA_BOOTSTRAP_SERVERS" in settings.environ:
                KafkaSettings.from_env(Env(settings.environ))
            return
        settings = ServiceSettings.from_env(name)
        if container.get("args") in (["migrate"], ["wait-migrated"], ["relay"]):  # none builds the service
            return
        entry = importlib.import_module(f"services.{name}.__main__")
        if container.get("args") == ["consume"]:  # its event consumers alone
            engine = make_engine(settings.database_url, settings.database_timeouts)
            entry.event_consumers(settings, engine)
            engine.dispose()
            return
        entry.build_app(settings).engine.dispose()


def processes(objects: Objects) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(service or gateway, deployment/container, pod, container) of every MiniMall process."""
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        name = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        if name not in (*SERVICES, "gateway"):
            continue
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield name, f"{deployment['metadata']['name']}/{container['name']}", pod, container


def start_every_process(objects: Objects, secrets: Secrets, root: Path) -> dict[str, str]:
    """deployment/container -> the error its start-up raised, for those that raised."""
    crashes = {}
    for name, process, pod, container in processes(objects):
        try:
            start_up(name, container, pod_environment(objects, pod, container, secrets, root / process))
        except Exception as exc:  # noqa: BLE001 - any exception at start is a crash loop
            crashes[process] = f"{type(exc).__name__}: {exc}"
    return crashes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_starts_with_the_secrets_the_readme_lists(rendered: dict[str, Objects], overlay: str,
                                                                readme_secrets: Secrets, tmp_path: Path) -> None:
    objects = rendered[overlay]
    # 5 servers and their migrate, 5 relays and 4 consumers and their wait-migrated, the gateway
    assert len(list(processes(objects))) == 29

    assert start_every_process(objects, secrets_in(objects, readme_secrets), tmp_path) == {}


def test_dev_starts_without_any_optional_secret(rendered: dict[str, Objects], readme_secrets: Secrets,
                                                tmp_path: Path) -> None:
    """Dev needs only what its overlay says to create: no payment channel, no SMS provider, derived identity keys."""
    objects = rendered["dev"]
    optional = set(readme_secrets) - required_secrets(objects)

    assert start_every_process(objects, secrets_in(objects, readme_secrets, missing=optional), tmp_path) == {}


def sasl_variant(directory: Path, *settings: str) -> Objects:
    """prod with the brokers requiring SASL over TLS, switched on as deploy/k8s/README.md "Kafka and Consul over TLS"
    says: the protocol and mechanism (and any other `settings`) in minimall-config, the credentials in
    minimall-kafka."""
    directory.mkdir()
    up = os.path.relpath(K8S, directory)
    literals = ("KAFKA_SECURITY_PROTOCOL=SASL_SSL", "KAFKA_SASL_MECHANISM=SCRAM-SHA-512", *settings)
    (directory / "kustomization.yaml").write_text(
        f"resources: [{up}/overlays/prod]\n"
        "configMapGenerator:\n- name: minimall-config\n  behavior: merge\n  literals:\n"
        + "".join(f"  - {literal}\n" for literal in literals))
    return kustomize(directory)


def test_every_process_starts_as_its_own_kafka_user_when_the_brokers_require_sasl(
        readme_secrets: Secrets, tmp_path: Path) -> None:
    """minimall-config is every process's, the gateway's too: it reads the brokers' settings for its catalogue cache's
    product-changed listener, and with SASL on and no credentials of its own it stops at start (every gateway pod
    crash-looping, the whole API down)."""
    objects = sasl_variant(tmp_path / "sasl")
    secrets = secrets_in(objects, readme_secrets, missing=frozenset())

    assert start_every_process(objects, secrets, tmp_path / "run") == {}
    users = {}
    for _, process, pod, container in processes(objects):
        environ = pod_environment(objects, pod, container, secrets, tmp_path / "env" / process)
        users[process] = (environ.get("KAFKA_SASL_USERNAME"), bool(environ.get("KAFKA_SASL_PASSWORD")))
    assert users == {process: (f"minimall-{name}", True) for name, process, _, _ in processes(objects)}


def run_topics_job(objects: Objects, secrets: Secrets, root: Path) -> tuple[subprocess.CompletedProcess[str], list[str],
                                                                             str | None]:
    """Run the kafka-topics Job's script with its pod's environment, its paths under `root` and a kafka-topics.sh
    that notes its arguments: (the run, each call's arguments, the client settings file it was handed)."""
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "kafka-topics")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    environ = pod_environment(objects, pod, container, secrets, root / "pod")
    topics = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kafka-topics"))
    (root / "pod" / "etc" / "kafka-topics" / "topics.txt").write_text(topics["data"]["topics.txt"])
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "kafka-topics.sh").write_text(f'#!/bin/sh\necho "$@" >> {root}/calls\n')
    (bin_dir / "kafka-topics.sh").chmod(0o755)
    paths = {"/opt/kafka/bin/": f"{bin_dir}/", "/etc/kafka-topics/": f"{root}/pod/etc/kafka-topics/",
             "/tmp/": f"{root}/pod/tmp/"}
    script = re.sub("|".join(map(re.escape, paths)), lambda m: paths[m.group(0)], container["args"][0])
    run = subprocess.run([*container["command"], script], env={**environ, "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=60)
    calls = (root / "calls").read_text().splitlines() if (root / "calls").exists() else []
    settings = root / "pod" / "tmp" / "client.properties"
    return run, calls, settings.read_text() if settings.exists() else None


def test_the_topics_job_creates_every_topic_as_its_own_kafka_user_when_the_brokers_require_sasl(
        readme_secrets: Secrets, tmp_path: Path) -> None:
    """With SASL on, a topics Job connecting in plaintext and without credentials is refused by the brokers and
    retries until its back-off limit: no topic would be created, and every relay would fail its sends."""
    objects = sasl_variant(tmp_path / "sasl", "KAFKA_SSL_CAFILE=/etc/minimall/kafka/ca.pem")
    secrets = secrets_in(objects, readme_secrets, missing=frozenset())

    run, calls, settings = run_topics_job(objects, secrets, tmp_path / "job")

    assert run.returncode == 0, run.stderr
    config = tmp_path / "job" / "pod" / "tmp" / "client.properties"
    assert sorted(call.split()[:6] for call in calls) == sorted(
        ["--bootstrap-server", "kafka:9092", "--command-config", str(config), "--create", "--if-not-exists"]
        for _ in TOPICS)
    assert {call.split()[7] for call in calls} == set(TOPICS)
    assert settings == ("security.protocol=SASL_SSL\n"
                        "sasl.mechanism=SCRAM-SHA-512\n"
                        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                        'username="minimall-topics" password="minimall-topics";\n'
                        "ssl.truststore.type=PEM\n"
                        "ssl.truststore.location=/etc/minimall/kafka/ca.pem\n")
    assert config.stat().st_mode & 0o077 == 0  # it holds the password


def test_the_topics_job_with_sasl_on_and_no_credentials_stops_naming_the_missing_keys(
        readme_secrets: Secrets, tmp_path: Path) -> None:
    objects = sasl_variant(tmp_path / "sasl")

    run, calls, _ = run_topics_job(objects, secrets_in(objects, readme_secrets), tmp_path / "job")

    assert (run.returncode, calls) == (1, [])
    assert "topics-username and topics-password of the secret minimall-kafka" in run.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_topics_job_connects_in_plaintext_without_credentials_as_shipped(
        rendered: dict[str, Objects], overlay: str, readme_secrets: Secrets, tmp_path: Path) -> None:
    objects = rendered[overlay]

    run, calls, settings = run_topics_job(objects, secrets_in(objects, readme_secrets), tmp_path)

    assert (run.returncode, len(calls), settings) == (0, len(TOPICS), "security.protocol=PLAINTEXT\n"), run.stderr


def run_exporter(objects: Objects, secrets: Secrets, root: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the kafka-exporter container's script with its pod's environment and a /bin/kafka_exporter that notes its
    arguments: (the run, the exporter's arguments, one a line)."""
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "kafka-exporter")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    environ = pod_environment(objects, pod, container, secrets, root / "pod")
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kafka_exporter").write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {root}/args\n')
    (bin_dir / "kafka_exporter").chmod(0o755)
    script = container["args"][0].replace("/bin/kafka_exporter", f"{bin_dir}/kafka_exporter")
    run = subprocess.run([*container["command"], script], env={**environ, "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=60)
    args = (root / "args").read_text().splitlines() if (root / "args").exists() else []
    return run, args


def test_the_kafka_exporter_connects_as_its_own_kafka_user_with_the_services_settings_when_sasl_is_on(
        readme_secrets: Secrets, tmp_path: Path) -> None:
    """With SASL over TLS on, an exporter connecting in plaintext to kafka:9092 is refused: no lag series, and
    ConsumerLagGrowing stays silent however far the consumers fall behind."""
    objects = sasl_variant(tmp_path / "sasl", "KAFKA_SSL_CAFILE=/etc/minimall/kafka/ca.pem",
                           "KAFKA_BOOTSTRAP_SERVERS=kafka-0.kafka:9094,kafka-1.kafka:9094")
    secrets = secrets_in(objects, readme_secrets, missing=frozenset())
    _, _, order_pod, order_relay = next(p for p in processes(objects) if p[1] == "order-relay/relay")
    services = KafkaSettings.from_env(Env(pod_environment(objects, order_pod, order_relay, secrets, tmp_path / "o")))

    run, args = run_exporter(objects, secrets, tmp_path / "exporter")

    assert run.returncode == 0, run.stderr
    assert (services.bootstrap_servers, services.security.protocol, services.security.sasl_mechanism) == (
        "kafka-0.kafka:9094,kafka-1.kafka:9094", "SASL_SSL", "SCRAM-SHA-512")
    assert args == ["--kafka.version=3.0.0", "--web.listen-address=:9308",
                    "--kafka.server=kafka-0.kafka:9094", "--kafka.server=kafka-1.kafka:9094",
                    "--sasl.enabled", "--sasl.mechanism=scram-sha512",
                    "--sasl.username=minimall-exporter", "--sasl.password=minimall-exporter",
                    "--tls.enabled", "--tls.ca-file=/etc/minimall/kafka/ca.pem"]


def test_the_kafka_exporter_with_sasl_on_and_no_credentials_stops_naming_the_missing_keys(
        readme_secrets: Secrets, tmp_path: Path) -> None:
    objects = sasl_variant(tmp_path / "sasl")

    run, args = run_exporter(objects, secrets_in(objects, readme_secrets), tmp_path / "exporter")

    assert (run.returncode, args) == (1, [])
    assert "exporter-username and exporter-password of the secret minimall-kafka" in run.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_exporter_connects_in_plaintext_without_credentials_as_shipped(
        rendered: dict[str, Objects], overlay: str, readme_secrets: Secrets, tmp_path: Path) -> None:
    objects = rendered[overlay]

    run, args = run_exporter(objects, secrets_in(objects, readme_secrets), tmp_path)

    assert (run.returncode, args) == (
        0, ["--kafka.version=3.0.0", "--web.listen-address=:9308", "--kafka.server=kafka:9092"]), run.stderr


def test_the_dev_overlay_names_every_secret_to_create_before_its_first_apply(rendered: dict[str, Objects]) -> None:
    """Its header is the dev checklist: a required secret left out of it leaves its pods in
    CreateContainerConfigError on the first apply."""
    header = "\n".join(line for line in (K8S / "overlays" / "dev" / "kustomization.yaml").read_text().splitlines()
                       if line.startswith("#"))
    generated = {o["metadata"]["name"] for o in rendered["dev"] if o["kind"] == "Secret"}
    by_hand = required_secrets(rendered["dev"]) - generated

    assert by_hand - set(re.findall(r"minimall-[a-z0-9-]*[a-z0-9]", header)) == set()


IDENTITY_KEYS_MISSING = "ConfigError: IDENTITY_KEYS must be set (kid:base64 AES-256 key, active key first)"
WECHATPAY_MISSING = "ConfigError: WECHATPAY_APIV3_KEY must be set"


@pytest.mark.parametrize(("secret", "crashes"), [
    # Relays and consumers build none of the service (services/common/runtime.py): they hold neither secret.
    ("minimall-user-identity", {"user/user": IDENTITY_KEYS_MISSING}),
    ("minimall-wechatpay", {"order/order": WECHATPAY_MISSING, "member/member": WECHATPAY_MISSING}),
])
def test_prod_without_an_identity_or_wechat_pay_secret_stops_at_start_naming_what_is_missing(
        rendered: dict[str, Objects], readme_secrets: Secrets, tmp_path: Path, secret: str,
        crashes: dict[str, str]) -> None:
    """Optional in the manifests (dev creates neither), required by prod's config: a prod namespace without one
    crash-loops saying why, rather than running without real-name checks or payments."""
    objects = rendered["prod"]

    assert start_every_process(objects, secrets_in(objects, readme_secrets, missing={secret, *NOT_AS_SHIPPED}), tmp_path) == crashes


@pytest.mark.parametrize("service", ["order", "member"])
def test_prod_takes_wechat_pay_in_order_and_member_notified_at_the_public_origin(
        rendered: dict[str, Objects], readme_secrets: Secrets, tmp_path: Path, service: str) -> None:
    objects = rendered["prod"]
    _, _, pod, container = next(p for p in processes(objects) if p[1] == f"{service}/{service}")
    environ = pod_environment(objects, pod, container, secrets_in(objects, readme_secrets), tmp_path)

    with process_environment(environ):
        base = ServiceSettings.from_env(service)
        if service == "order":
            orders = OrderServiceSettings.from_env(base)
            channels = (orders.wechatpay is not None, orders.orders.notify_url, orders.orders.refund_notify_url)
            expected = (True, f"{PUBLIC_ORIGIN}/api/v1/payments/wechat/notify",
                        f"{PUBLIC_ORIGIN}/api/v1/payments/wechat/refund-notify")
        else:
            members = MemberServiceSettings.from_env(base)
            channels = (members.wechatpay is not None, members.notify_urls["wechat"], members.alipay, members.bankcard)
            expected = (True, f"{PUBLIC_ORIGIN}/api/v1/payments/wechat/recharge-notify", None, None)

    assert channels == expected


def test_the_prod_public_origin_is_the_ingress_host(rendered: dict[str, Objects]) -> None:
    ingress = next(o for o in rendered["prod"] if o["kind"] == "Ingress")
    config = next(o["data"] for o in rendered["prod"]
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("minimall-config"))

    assert (config["MINIMALL_PUBLIC_URL"], [rule["host"] for rule in ingress["spec"]["rules"]]) == (
        PUBLIC_ORIGIN, [PUBLIC_ORIGIN.removeprefix("https://")])
