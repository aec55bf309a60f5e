"""Liveness of the relay and consumer loops: each beats once per iteration, and /livez answers 503 once one is late.

A loop's beat is the monotonic time its last iteration completed, an idle poll or a back-off wait included: a relay
that cannot reach the broker, or a consumer retrying a failing record, still beats. Only a loop that no longer comes
round (hung in a call, deadlocked, its thread dead) falls behind its bound, the longest one iteration may take with the
loop's own timeouts plus LIVENESS_MARGIN_SECONDS (OutboxRelay.liveness_bound_seconds,
EventConsumer.liveness_bound_seconds). Kubernetes probes /livez on the metrics port and restarts the pod
(deploy/k8s/generate.py); readiness stays on /metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from services.common.metrics import LOOP_BEAT_AGE

Clock = Callable[[], float]

# Added to every loop's worst-case iteration: scheduling, GC, a slow DNS answer; what no timeout of the loop covers.
LIVENESS_MARGIN_SECONDS = 30.0
LIVENESS_PATH = "/livez"


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


class Liveness:
    """The heartbeats of one process's loops; alive while none is late (a process with none, a server, is alive)."""

    def __init__(self) -> None:
        self._beats: dict[str, Heartbeat] = {}
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

    def late(self) -> list[Heartbeat]:
        with self._lock:
            return [heartbeat for heartbeat in self._beats.values() if heartbeat.late()]

    def answer(self) -> tuple[int, str]:
        """HTTP status and body of /livez: 200, or 503 naming each late loop with its beat's age and bound."""
        late = self.late()
        if not late:
            return 200, "ok\n"
        return 503, "".join(f"{h.name}: last beat {h.age():.1f} s ago, bound {h.bound_seconds:.1f} s\n" for h in late)


# The process's own, as prometheus_client's REGISTRY: runtime.run_roles registers its loops, serve_metrics answers.
LIVENESS = Liveness()
