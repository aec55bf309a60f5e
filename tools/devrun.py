"""`make run` / `make stop`: the whole platform on embedded defaults as one supervised process group.

Starts the dev broker (unless KAFKA_BOOTSTRAP_SERVERS names one), migrates the five service
databases, seeds the admin account, starts the five services (each with its own service token,
minted at every start with the dev signing key) and the gateway (gunicorn), prints where to go,
and on Ctrl-C / SIGTERM (`make stop`) stops everything it started.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.config import GRPC_PORTS, METRICS_PORTS, SERVICES, Env, database_url, var_dir
from services.common.devbroker import DevBroker, create_topics, die_with_parent
from services.common.events import TOPICS
from services.user.tokens import mint_service_token
from tools.simulator import DEFAULT_PORT as SIMULATOR_PORT
from tools.simulator import SimulatorConfig, dev_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
COLORS = ["36", "32", "33", "35", "34", "31", "96"]
DEV_SERVICE_TOKEN_TTL = timedelta(days=30)  # minted again at every start
# The demo shop's returns desk (ORDER_RETURN_ADDRESS): approved returns show shoppers where to send the goods.
DEMO_RETURN_ADDRESS = {"name": "MiniMall售后", "phone": "0571-88888888", "province": "浙江省", "city": "杭州市",
                       "district": "西湖区", "detail": "文三路1号 MiniMall 退货仓"}


def ensure_keys(var: Path) -> tuple[Path, Path]:
    """A dev Ed25519 signing key pair under var/keys (generated once, never committed)."""
    keys = var / "keys"
    private, public = keys / "jwt-private.pem", keys / "jwt-public.pem"
    if not private.exists():
        keys.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        write_secret(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def service_tokens(private_key_file: Path) -> dict[str, str]:
    """Each service's own token (SERVICE_TOKEN), signed with the dev key; handed to that service's process only."""
    key = private_key_file.read_bytes()
    now = datetime.now(UTC)
    return {service: mint_service_token(key, service, now=now, ttl=DEV_SERVICE_TOKEN_TTL) for service in SERVICES}


def admin_credentials(var: Path, env: dict[str, str]) -> tuple[str, str]:
    """DEV_ADMIN_PHONE / DEV_ADMIN_PASSWORD, else a password generated once and kept in var/dev-admin.json."""
    phone = env.get("DEV_ADMIN_PHONE", "13800000000")
    if env.get("DEV_ADMIN_PASSWORD"):
        return phone, env["DEV_ADMIN_PASSWORD"]
    stored = var / "dev-admin.json"
    if stored.exists():
        saved = json.loads(stored.read_text())
        if saved["phone"] == phone:
            return phone, saved["password"]
    password = f"mm{secrets.token_urlsafe(9)}{secrets.randbelow(90) + 10}"  # letters and digits
    write_secret(stored, json.dumps({"phone": phone, "password": password}).encode())
    return phone, password


def write_secret(path: Path, data: bytes) -> None:
    """Create a file only its owner can read, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def platform_env(var: Path) -> dict[str, str]:
    """The environment every child gets: the caller's, completed with the embedded defaults."""
    env = dict(os.environ)
    env.pop("SERVICE_TOKEN", None)  # one per service (service_tokens), never shared by every child
    env["MINIMALL_VAR"] = str(var)  # absolute: every child finds the same files, whatever its working directory
    private, public = ensure_keys(var)
    env.setdefault("JWT_PRIVATE_KEY_FILE", str(private))
    env.setdefault("JWT_PUBLIC_KEY_FILE", str(public))
    env.setdefault("MINIMALL_ENV", "dev")
    env.setdefault("SMS_PROVIDER", "console")
    env.setdefault("KAFKA_MAX_POLL_INTERVAL_MS", "2000")
    env.setdefault("KAFKA_MAX_POLL_RECORDS", "100")  # a batch must end well inside that interval on a busy machine
    env.setdefault("GATEWAY_BIND", "127.0.0.1:8080")
    env.setdefault("GATEWAY_READY_REQUIRES", ",".join(SERVICES))  # ready means the whole platform is up
    # Third parties (WeChat, Aliyun SMS, real-name) are the dev simulator, speaking their protocols.
    env.setdefault("SIMULATOR_PORT", str(SIMULATOR_PORT))
    for name, value in dev_env(f"http://127.0.0.1:{env['SIMULATOR_PORT']}", SimulatorConfig.from_env(env)).items():
        env.setdefault(name, value)
    env.setdefault("IDENTITY_PROVIDER", "faceid")  # real-name checks through the simulator's FaceID
    # WeChat Pay (the simulator) notifies the order service through the gateway, as in production.
    env.setdefault("ORDER_WECHATPAY_NOTIFY_URL", f"http://{env['GATEWAY_BIND']}/api/v1/payments/wechat/notify")
    env.setdefault("ORDER_WECHATPAY_REFUND_NOTIFY_URL",
                   f"http://{env['GATEWAY_BIND']}/api/v1/payments/wechat/refund-notify")
    # ... and the member service's recharges (WeChat Pay, Alipay, bank card) under the gateway's /api/v1.
    env.setdefault("MEMBER_NOTIFY_BASE_URL", f"http://{env['GATEWAY_BIND']}/api/v1")
    env.setdefault("MEDIA_DIR", str(var / "media"))  # uploads and the demo catalog's images
    env.setdefault("ORDER_RETURN_ADDRESS", json.dumps(DEMO_RETURN_ADDRESS, ensure_ascii=False))  # approved returns
    for service in SERVICES:
        env[f"{service.upper()}_DATABASE_URL"] = database_url(Env(env), service)
        if f"{service.upper()}_GRPC_LISTEN" in env:  # a moved service stays reachable by the gateway
            env.setdefault(f"{service.upper()}_GRPC_TARGET", env[f"{service.upper()}_GRPC_LISTEN"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Port:
    host: str
    port: int
    what: str
    variable: str  # the environment variable that moves it


def ports_needed(env: Mapping[str, str]) -> list[Port]:
    """Every TCP port `make run` will listen on, with the variable that moves each."""
    bind = env.get("GATEWAY_BIND", "127.0.0.1:8080")
    ports = [] if bind.startswith(("unix:", "fd://")) else [_port(bind, "the gateway", "GATEWAY_BIND")]
    for service in SERVICES:
        listen = f"{service.upper()}_GRPC_LISTEN"
        ports.append(_port(env.get(listen) or f"127.0.0.1:{GRPC_PORTS[service]}", f"{service} gRPC", listen))
        metrics = f"{service.upper()}_METRICS_PORT"
        ports.append(_port(f"0.0.0.0:{env.get(metrics) or METRICS_PORTS[service]}", f"{service} metrics", metrics))
    if "KAFKA_BOOTSTRAP_SERVERS" not in env:
        ports.append(_port(f"127.0.0.1:{env.get('DEV_BROKER_PORT') or 9092}", "the dev broker", "DEV_BROKER_PORT"))
    ports.append(_port(f"127.0.0.1:{env.get('SIMULATOR_PORT') or SIMULATOR_PORT}", "the dev simulator",
                       "SIMULATOR_PORT"))
    return [port for port in ports if port.port]  # 0: any free port, or not exposed at all


def _port(address: str, what: str, variable: str) -> Port:
    host, _, port = address.rpartition(":")
    try:
        return Port(host.strip("[]") or "0.0.0.0", int(port), what, variable)
    except ValueError:
        raise SystemExit(f"{variable}={address!r} is not host:port") from None


def taken_port(ports: list[Port]) -> Port | None:
    """The first of `ports` something already listens on (or we may not bind), else None."""
    for port in ports:
        family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no clash
            try:
                probe.bind((port.host, port.port))
            except OSError:
                return port
    return None


class Supervisor:
    """Starts children in their own sessions, prefixes their output, and stops them all together."""

    def __init__(self, env: dict[str, str], raw_logs: bool) -> None:
        self.env = env
        self.raw_logs = raw_logs
        self.children: list[tuple[str, subprocess.Popen[str]]] = []
        self.stopping = threading.Event()
        self.print_lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        color = COLORS[hash(name) % len(COLORS)]
        with self.print_lock:
            print(f"\033[{color}m{name:>9} |\033[0m {line}", flush=True)

    def run_once(self, name: str, args: list[str], extra_env: dict[str, str] | None = None, *,
                 show_output: bool = False) -> None:
        """Run a command to its end; its output is shown only if it fails (or, with show_output, as it goes)."""
        result = subprocess.run(args, env={**self.env, **(extra_env or {})}, cwd=ROOT, capture_output=not show_output,
                                text=True)
        if result.returncode != 0:
            for line in ((result.stdout or "") + (result.stderr or "")).splitlines():
                self.say(name, line)
            raise SystemExit(f"{name} failed with exit code {result.returncode}")

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        # Own session: Ctrl-C reaches only us, and we stop the children in order. Should we be
        # killed outright, they get SIGTERM from the kernel instead of living on as orphans.
        process = subprocess.Popen(args, env={**self.env, **(extra_env or {})}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True, preexec_fn=die_with_parent)
        self.children.append((name, process))
        threading.Thread(target=self._pump, args=(name, process), daemon=True).start()

    def _pump(self, name: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.say(name, self._readable(line.rstrip()))
        if not self.stopping.is_set():
            self.say(name, f"exited with code {process.wait()}; stopping the platform")
            self.stopping.set()

    def _readable(self, line: str) -> str:
        if self.raw_logs:
            return line
        if not line.startswith("{"):
            return printable(line)
        try:
            entry = json.loads(line)
        except ValueError:
            return printable(line)
        if not isinstance(entry, dict):
            return printable(line)
        rid = f" [{printable(str(entry['request_id']))}]" if entry.get("request_id") else ""
        text = (f"{printable(str(entry.get('ts', '')))[11:19]} {printable(str(entry.get('level', ''))):<7} "
                f"{printable(str(entry.get('msg', '')))}{rid}")
        if not entry.get("exc"):
            return text
        # A traceback keeps its lines, indented: a line forged inside it cannot pass for an entry.
        return text + "".join("\n    " + printable(part) for part in str(entry["exc"]).split("\n"))

    def stop_all(self) -> None:
        self.stopping.set()
        for _name, process in reversed(self.children):  # gateway first, broker last
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(name, "did not stop in time; killing")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# C0 and C1 controls, line and paragraph separators, and bidirectional overrides: in a log read by
# a human they forge lines (a %0A in a request path) or rewrite what the terminal shows.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control character shown as its escape (\\n, \\x1b, \\u2028...)."""
    return UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def wait_ready(url: str, supervisor: Supervisor, timeout_seconds: float = 90) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline and not supervisor.stopping.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the platform did not become ready ({url})")


DEMO_SHOPPERS = ("13700000001", "13700000002", "13700000003")


def seed_demo_shoppers(api: str, var: Path, supervisor: Supervisor) -> None:
    """Register demo shoppers the way the mini-program does (SMS code, login), once per data folder.

    Their user-registered events flow through outbox, broker and consumer, so the admin overview
    has something to show from the first minute.
    """
    marker = var / "demo-shoppers.done"
    if marker.exists():
        return
    for phone in DEMO_SHOPPERS:
        sent = post_json(f"{api}/auth/sms-codes", {"phone": phone, "purpose": "login"})
        post_json(f"{api}/auth/login/sms", {"phone": phone, "code": sent["dev_code"]})
    marker.write_text("\n".join(DEMO_SHOPPERS))
    supervisor.say("seed", f"demo shoppers registered by SMS login: {', '.join(DEMO_SHOPPERS)}")


def post_json(url: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def claim_pid_file(pid_file: Path) -> IO[str] | None:
    """Lock `pid_file` for this process's lifetime and write our pid in it; None if a devrun holds it.

    The kernel drops the lock when its holder dies, however it dies, so a file left behind by a
    killed devrun (even one whose pid a restarted container hands out again) never blocks a start.
    """
    handle = pid_file.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def running_devrun(pid_file: Path) -> int | None:
    """The pid of the live devrun holding `pid_file`, else None."""
    try:
        handle = pid_file.open()
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = handle.read().strip()
            return int(content) if content.isdigit() else None
    return None  # nobody holds it: left behind by a devrun that died


def stop_running(var: Path) -> int:
    """`make stop`: SIGTERM the devrun whose pid file is in `var`, and wait until it is gone."""
    pid = running_devrun(var / "devrun.pid")
    if pid is None:
        print(f"MiniMall is not running (no live devrun in {var / 'devrun.pid'})")
        return 0
    os.kill(pid, signal.SIGTERM)
    print("stopping MiniMall...")
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print("MiniMall stopped" if not Path(f"/proc/{pid}").exists() else f"process {pid} is still running")
    return 0


def _example(port: Port) -> str:
    other = port.port + 1000 if port.port + 1000 < 65536 else port.port - 1000
    return str(other) if port.variable.endswith("_PORT") else f"{port.host}:{other}"


def main() -> int:
    var = var_dir(Env(), root=ROOT)
    if sys.argv[1:] == ["stop"]:
        return stop_running(var)
    var.mkdir(parents=True, exist_ok=True)
    pid_file = var / "devrun.pid"
    claimed = claim_pid_file(pid_file)
    if claimed is None:
        print(f"MiniMall is already running from {var} (pid {running_devrun(pid_file)}); `make stop` first",
              file=sys.stderr)
        return 1
    env = platform_env(var)
    taken = taken_port(ports_needed(env))
    if taken is not None:  # before anything starts: one clear line instead of a child's traceback
        print(f"port {taken.port} ({taken.what}) is already in use; set {taken.variable} to move it, "
              f"e.g. `{taken.variable}={_example(taken)} make run`", file=sys.stderr)
        pid_file.unlink(missing_ok=True)
        claimed.close()
        return 1
    supervisor = Supervisor(env, raw_logs=env.get("DEVRUN_RAW_LOGS") == "1")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: supervisor.stopping.set())
    broker = None
    try:
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            broker = DevBroker(int(env.get("DEV_BROKER_PORT", "9092"))).start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
            supervisor.say("broker", f"tansu (memory-only) listening on {broker.bootstrap_servers}")
        create_topics(env["KAFKA_BOOTSTRAP_SERVERS"], [env.get("KAFKA_TOPIC_PREFIX", "") + t for t in TOPICS])
        simulator = f"http://127.0.0.1:{env['SIMULATOR_PORT']}"
        supervisor.start("simulator", [PYTHON, "-m", "tools.simulator", "--port", env["SIMULATOR_PORT"]])
        wait_ready(f"{simulator}/sim/healthz", supervisor, 20)
        for service in SERVICES:
            supervisor.run_once(service, [PYTHON, "-m", f"services.{service}", "migrate"])
        supervisor.run_once("catalog", [PYTHON, "-m", "services.product", "seed"], show_output=True)  # progress bar
        phone, password = admin_credentials(var, env)
        supervisor.run_once("seed", [PYTHON, "-m", "services.user", "create-admin", "--phone", phone],
                            extra_env={"ADMIN_PASSWORD": password})  # not on argv, where ps shows it
        tokens = service_tokens(Path(env["JWT_PRIVATE_KEY_FILE"]))
        for service in SERVICES:
            supervisor.start(service, [PYTHON, "-m", f"services.{service}"], {"SERVICE_TOKEN": tokens[service]})
        supervisor.start("gateway", [PYTHON, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"])
        base = f"http://{env['GATEWAY_BIND']}"
        wait_ready(f"{base}/readyz", supervisor)
        seed_demo_shoppers(f"{base}/api/v1", var, supervisor)
        supervisor.say("devrun", "\n".join([
            "MiniMall is up.",
            f"  gateway     {base}/api/v1",
            f"  API docs    {base}/docs   (OpenAPI: {base}/openapi.json)",
            f"  readiness   {base}/readyz   metrics: {base}/metrics",
            f"  simulator   {simulator}   (WeChat, WeChat Pay, Alipay, bank card, SMS, real-name; see tools/simulator/README.md)",
            f"  admin login phone {phone}  password {password}   (POST /api/v1/auth/login/password)",
            f"  broker      {env['KAFKA_BOOTSTRAP_SERVERS']}   data: {var}",
            "  stop with Ctrl-C or `make stop`",
        ]))
        supervisor.stopping.wait()
        return 0
    finally:
        supervisor.say("devrun", "stopping...")
        supervisor.stop_all()
        if broker is not None:
            broker.stop()
        pid_file.unlink(missing_ok=True)
        claimed.close()
        supervisor.say("devrun", "stopped")


if __name__ == "__main__":
    sys.exit(main())
