"""Liveness of a service process: its loops beat once per iteration, and /livez answers 503 once one is late or, in a
server, once its own gRPC server does not answer its health check.

A loop is the relay, a consumer, or a background job of the serve role (runtime.ServiceApp.jobs: pruning,
timeouts, reconciliations, the report runner, the live-settings watch). Its beat is the monotonic time its last
iteration completed, an idle poll, a back-off wait or a failed round included: a relay that cannot reach the broker,
a consumer retrying a failing record or a job whose round keeps failing still beats. Only a loop that no longer comes
round (hung in a call or on a lock, deadlocked, its thread dead) falls behind its bound, the longest one iteration may
take with the loop's own timeouts plus LIVENESS_MARGIN_SECONDS (OutboxRelay.liveness_bound_seconds,
EventConsumer.liveness_bound_seconds, runtime.Job.bound_seconds). A server's /livez also asks its own gRPC server
for grpc.health.v1 over loopback (GrpcSelfCheck), as the native gRPC liveness probe did: a container has one liveness
probe, and it now asks /livez. Kubernetes probes /livez on the metrics port and restarts the pod
(deploy/k8s/generate.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.db import POSTGRES_TIMEOUTS
from services.common.metrics import LOOP_BEAT_AGE

Clock = Callable[[], float]
# A check of /livez besides the beats: None while fine, else the line /livez answers with.
Check = Callable[[], str | None]

# Added to every loop's worst-case iteration: scheduling, GC, a slow DNS answer; what no timeout of the loop covers.
LIVENESS_MARGIN_SECONDS = 30.0
LIVENESS_PATH = "/livez"
# The longest one database call takes on a connection whose server vanished: connecting, or waiting for an answer
# that never comes (connect_timeout + tcp_user_timeout, services/common/db.py). 70 s.
DATABASE_CALL_SECONDS = POSTGRES_TIMEOUTS["connect_timeout"] + POSTGRES_TIMEOUTS["tcp_user_timeout"] / 1000
# How long /livez waits for its own gRPC server's health answer: as long as the native gRPC liveness probe waited
# (2 s), within the HTTP probe's timeout (deploy/k8s/generate.py) and the image HEALTHCHECK's (healthcheck.py).
GRPC_SELF_CHECK_SECONDS = 2.0


class Heartbeat:
    """The beat of one loop (`name`), late once older than `bound_seconds`. It starts beating when created."""

    def __init__(self, name: str, bound_seconds: float, *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.bound_seconds = bound_seconds
        self.clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self.clock()

    def age(self) -> float:
        return max(0.0, self.clock() - self._last)

    def late(self) -> bool:
        return self.age() > self.bound_seconds


class GrpcSelfCheck:
    """/livez's check of the process's own gRPC server: grpc.health.v1 Check of the server as a whole ("") at
    `target` (its port over loopback), on a connection of its own, within `deadline_seconds`. A server that does not
    answer in time (every worker wedged, its threads dead) or answers other than SERVING fails it."""

    name = "grpc-server"

    def __init__(self, target: str, *, deadline_seconds: float = GRPC_SELF_CHECK_SECONDS) -> None:
        self.target = target
        self.deadline_seconds = deadline_seconds

    def __call__(self) -> str | None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                   timeout=self.deadline_seconds)
        except grpc.RpcError as exc:
            return f"{self.name}: health check of {self.target} failed: {exc.code().name}"  # type: ignore[attr-defined]
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            return (f"{self.name}: health check of {self.target} answered "
                    f"{health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}")
        return None


def loopback_target(listen: str, port: int) -> str:
    """Where this process reaches its own gRPC server bound at `listen` ("host:port"): loopback when bound to every
    address, else the address it is bound to."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - read, not bound
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Liveness:
    """The heartbeats of one process's loops and its other checks (a server's GrpcSelfCheck); alive while no beat is
    late and no check fails (a process with neither is alive)."""

    def __init__(self) -> None:
        self._beats: dict[str, Heartbeat] = {}
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def register(self, heartbeats: Iterable[Heartbeat]) -> None:
        with self._lock:
            for heartbeat in heartbeats:
                self._beats[heartbeat.name] = heartbeat
                LOOP_BEAT_AGE.labels(heartbeat.name).set_function(heartbeat.age)

    def unregister(self, heartbeats: Iterable[Heartbeat]) -> None:
        with self._lock:
            for heartbeat in heartbeats:
                if self._beats.get(heartbeat.name) is heartbeat:
                    del self._beats[heartbeat.name]
                    LOOP_BEAT_AGE.remove(heartbeat.name)

    def watch(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks[name] = check

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def late(self) -> list[Heartbeat]:
        with self._lock:
            return [heartbeat for heartbeat in self._beats.values() if heartbeat.late()]

    def answer(self) -> tuple[int, str]:
        """HTTP status and body of /livez: 200, or 503 naming each late loop with its beat's age and bound, and each
        failing check with what it found."""
        with self._lock:
            checks = list(self._checks.values())
        problems = [f"{h.name}: last beat {h.age():.1f} s ago, bound {h.bound_seconds:.1f} s\n" for h in self.late()]
        problems += [f"{problem}\n" for check in checks if (problem := check()) is not None]
        if not problems:
            return 200, "ok\n"
        return 503, "".join(problems)


# The process's own, as prometheus_client's REGISTRY: runtime.run_roles registers its loops, serve_metrics answers.
LIVENESS = Liveness()
