"""Fixed-window rate limits: shared in Redis when REDIS_URL is set, in process memory otherwise."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import redis

from gateway.metrics import RATE_LIMITED

log = logging.getLogger(__name__)


def clock() -> float:
    """The wall clock windows are cut from (a function of its own, so tests can hold it still)."""
    return time.time()


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per `seconds` for each value of `key`.

    `key` names what is counted: "ip" (the client address), a JSON body field such as "phone",
    or several joined by "+" ("phone+ip": per phone from each address). A request lacking any
    part is not counted under this limit. Body fields are read only after the body validated.
    """

    key: str
    count: int
    seconds: int

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("+"))

    @property
    def client_only(self) -> bool:
        """True when the limit needs nothing from the body, so it can run before validation."""
        return self.parts == ("ip",)


class Counter(Protocol):
    def hit(self, bucket: str, seconds: int, now: float) -> int:
        """Count one request in the current window of `bucket`; returns the window's count so far."""

    def peek(self, bucket: str, seconds: int, now: float) -> int:
        """The current window's count of `bucket`, without counting."""


class MemoryCounter:
    """Per-process counters: right for one gateway process (make run), not for several replicas."""

    MAX_BUCKETS = 50_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[int, int, float]] = {}  # bucket -> (window, count, expires_at)
        self._lock = threading.Lock()

    def hit(self, bucket: str, seconds: int, now: float) -> int:
        window = int(now // seconds)
        with self._lock:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
            start, count, _ = self._buckets.get(bucket, (window, 0, 0.0))
            count = count + 1 if start == window else 1
            self._buckets[bucket] = (window, count, (window + 1) * seconds)
        return count

    def peek(self, bucket: str, seconds: int, now: float) -> int:
        with self._lock:
            start, count, _ = self._buckets.get(bucket, (-1, 0, 0.0))
        return count if start == int(now // seconds) else 0


class RedisCounter:
    """Counters shared by every gateway replica (INCR + EXPIRE per window)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def hit(self, bucket: str, seconds: int, now: float) -> int:
        key = f"mall:ratelimit:{bucket}:{int(now // seconds)}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, seconds + 1)
        count, _ = pipe.execute()
        return int(count)

    def peek(self, bucket: str, seconds: int, now: float) -> int:
        return int(self.client.get(f"mall:ratelimit:{bucket}:{int(now // seconds)}") or 0)


class RateLimiter:
    def __init__(self, counter: Counter, scale: float = 1.0, key: bytes | None = None) -> None:
        self.counter = counter
        self.scale = scale  # GATEWAY_RATE_LIMIT_SCALE: multiplies every limit's count
        # Bucket names are HMACs under this key: a phone number's plain hash is easily reversed
        # (there are only about 10^10 of them). Replicas sharing Redis must share the key.
        self.key = key if key is not None else os.urandom(32)

    def check(self, endpoint: str, limits: tuple[Limit, ...], values: Mapping[str, str],
              now: float | None = None) -> int | None:
        """Count the request under each limit in turn; at the first one exceeded, the seconds to wait.

        Values are keyed-hashed into the bucket names: no phone number or address sits in the store.
        If the shared store is down the request is let through (and logged): losing rate
        limiting for a while is better than refusing every login.
        """
        now = clock() if now is None else now
        for limit in limits:
            bucket = self._bucket(endpoint, limit, values)
            if bucket is None:
                continue
            try:
                count = self.counter.hit(bucket, limit.seconds, now)
            except redis.RedisError:
                log.warning("rate-limit store unavailable; letting %s through", endpoint, exc_info=True)
                return None
            if count > self.allowed(limit):
                RATE_LIMITED.labels(endpoint, limit.key).inc()
                return retry_after(limit, now)
        return None

    def seen(self, endpoint: str, limit: Limit, values: Mapping[str, str], now: float | None = None) -> int:
        """How many this window has counted under `limit` for `values` (0 if the store is down)."""
        bucket = self._bucket(endpoint, limit, values)
        try:
            return 0 if bucket is None else self.counter.peek(bucket, limit.seconds, clock() if now is None else now)
        except redis.RedisError:
            log.warning("rate-limit store unavailable; not limiting %s", endpoint, exc_info=True)
            return 0

    def count(self, endpoint: str, limit: Limit, values: Mapping[str, str], now: float | None = None) -> None:
        """Count one event (a failed login, a successful one...) under `limit` after the fact."""
        bucket = self._bucket(endpoint, limit, values)
        try:
            if bucket is not None:
                self.counter.hit(bucket, limit.seconds, clock() if now is None else now)
        except redis.RedisError:
            log.warning("rate-limit store unavailable; %s not counted", endpoint, exc_info=True)

    def allowed(self, limit: Limit) -> int:
        return max(1, int(limit.count * self.scale))

    def _bucket(self, endpoint: str, limit: Limit, values: Mapping[str, str]) -> str | None:
        parts = [values.get(part, "") for part in limit.parts]
        if not all(parts):
            return None
        digest = hmac.new(self.key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{endpoint}:{limit.key}/{limit.seconds}:{digest}"


@dataclass(frozen=True)
class FailureGuard:
    """A per-account ceiling on failures that cannot be used to lock the owner out.

    After `failures.count` failures in a window, further tries are refused, but only from
    addresses that have not succeeded for this account within `trusted.seconds`: an attacker
    guessing from many addresses is stopped, while the owner's usual addresses still get in.
    """

    failures: Limit  # e.g. Limit("phone", 20, 3600)
    trusted: Limit   # e.g. Limit("phone+ip", 1, 30 days): an address that logged in lately

    def wait(self, limiter: RateLimiter, endpoint: str, values: Mapping[str, str]) -> int | None:
        """Seconds to wait when this try must be refused, else None."""
        if limiter.seen(endpoint, self.trusted, values) > 0:
            return None
        if limiter.seen(endpoint, self.failures, values) < limiter.allowed(self.failures):
            return None
        RATE_LIMITED.labels(endpoint, f"failed-{self.failures.key}").inc()
        return retry_after(self.failures, time.time())

    def record(self, limiter: RateLimiter, endpoint: str, values: Mapping[str, str], *, succeeded: bool) -> None:
        limiter.count(endpoint, self.trusted if succeeded else self.failures, values)


def retry_after(limit: Limit, now: float) -> int:
    """Seconds until `limit`'s current window ends."""
    return max(1, int((now // limit.seconds + 1) * limit.seconds - now + 0.999))


def client_address(remote_addr: str | None) -> str:
    """What per-address limits count: the IPv4 address, or the IPv6 /64 (one subscriber's prefix)."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def make_rate_limiter(redis_url: str | None, scale: float = 1.0, secret: str | None = None) -> RateLimiter:
    """Counters in Redis (with the replicas' shared `secret` as the bucket key) or in this process."""
    if redis_url and not secret:
        raise ValueError("Redis rate-limit counters need the replicas' shared secret")
    key = secret.encode() if secret else None
    return RateLimiter(RedisCounter(redis_url) if redis_url else MemoryCounter(), scale, key)
