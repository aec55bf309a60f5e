"""Settings ops may change while the platform runs, watched in Consul's key/value store.

A service declares the few settings it lets ops tune live (e.g. the order payment timeout, the
days before receipt is confirmed automatically), each with its default from the environment.
With Consul configured, `watch()` long-polls `minimall/<service>/` (a blocking query) and each
key there overrides its default: `consul kv put minimall/order/payment_timeout_minutes 15`.
A value that is not a whole number within its bounds is ignored (the last good value stays, and
a warning says why); Consul down or absent changes nothing: the last values stay in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import consul
import requests

from services.common.discovery import CONSUL_TIMEOUT_SECONDS, Discovery
from services.common.liveness import LIVENESS_MARGIN_SECONDS

log = logging.getLogger(__name__)

PREFIX = "minimall"
WAIT = "30s"  # a blocking query returns at least this often
WAIT_SECONDS = 30.0
BACKOFF_SECONDS = 5.0


@dataclass(frozen=True)
class Tunable:
    """One live setting: its default and the bounds a value from Consul must keep."""

    default: int
    minimum: int
    maximum: int


class RuntimeConfig:
    """The current values of a service's tunables: Consul's, where valid, else the defaults."""

    def __init__(self, discovery: Discovery, service: str, tunables: Mapping[str, Tunable]) -> None:
        self.discovery = discovery
        self.prefix = f"{PREFIX}/{service}/"
        self.tunables = dict(tunables)
        self._values = {name: tunable.default for name, tunable in self.tunables.items()}
        self._lock = threading.Lock()
        self._index: str | None = None
        self._subscribers: list[Callable[[dict[str, int]], None]] = []

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def values(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def subscribe(self, apply: Callable[[dict[str, int]], None]) -> None:
        """Call `apply(values)` now and after every change (from the thread that noticed it)."""
        self._subscribers.append(apply)
        apply(self.values())

    def refresh(self, *, wait: str | None = None) -> bool:
        """Read the prefix once (blocking up to `wait` for a change); False when Consul did not answer."""
        if self.discovery.consul is None:
            return True
        try:
            index, entries = self.discovery.consul.kv.get(self.prefix, recurse=True, index=self._index, wait=wait)
        except (consul.ConsulException, requests.RequestException, OSError) as exc:
            log.warning("runtime config: Consul did not answer (%s); keeping the current values", type(exc).__name__)
            return False
        found = {entry["Key"][len(self.prefix):]: entry.get("Value") for entry in entries or ()}
        values = {name: self._valid(name, found[name]) if name in found else tunable.default
                  for name, tunable in self.tunables.items()}
        changed = False
        with self._lock:
            for name, value in values.items():
                if value is not None and value != self._values[name]:
                    log.info("runtime config: %s%s = %d", self.prefix, name, value)
                    self._values[name] = value
                    changed = True
        self._index = index
        if changed:
            for apply in self._subscribers:
                apply(self.values())
        return True

    def watch(self, stop: threading.Event, beat: Callable[[], None] = lambda: None,
              backoff_seconds: float = BACKOFF_SECONDS) -> None:
        """Follow changes until `stop` is set (run it in a thread), calling `beat()` after each query (and back-off).
        Without Consul nothing can change: it only waits for `stop`, beating each WAIT (refresh() would answer True
        without waiting, and the loop would spin a core)."""
        if self.discovery.consul is None:
            while not stop.wait(WAIT_SECONDS):
                beat()
            return
        while not stop.is_set():
            if not self.refresh(wait=WAIT):
                stop.wait(backoff_seconds)
            beat()

    def liveness_bound_seconds(self) -> float:
        """The longest between two beats of `watch`, plus LIVENESS_MARGIN_SECONDS: a blocking query (its connect,
        CONSUL_TIMEOUT_SECONDS, then its answer: WAIT, Consul's jitter of up to WAIT / 16, and CONSUL_TIMEOUT_SECONDS
        on top; requests times the two apart, discovery._HTTPClient) and the back-off after one that failed.
        30 + (30 + 1.875 + 30) + 5 + 30 = 126.875 s."""
        return (CONSUL_TIMEOUT_SECONDS + WAIT_SECONDS * 17 / 16 + CONSUL_TIMEOUT_SECONDS + BACKOFF_SECONDS
                + LIVENESS_MARGIN_SECONDS)

    def _valid(self, name: str, raw: bytes | None) -> int | None:
        tunable = self.tunables[name]
        try:
            value = int((raw or b"").decode().strip())
        except (UnicodeDecodeError, ValueError):
            log.warning("runtime config: %s%s is not a whole number; ignored", self.prefix, name)
            return None
        if not tunable.minimum <= value <= tunable.maximum:
            log.warning("runtime config: %s%s = %d is outside %d..%d; ignored", self.prefix, name, value,
                        tunable.minimum, tunable.maximum)
            return None
        return value
