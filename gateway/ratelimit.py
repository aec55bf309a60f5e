"""Fixed-window rate limits: shared in Redis when REDIS_URL is set, in process memory otherwise."""

from __future__ import annotations

import hashlib
import hmac
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
        now = time.time() if now is None else now
        for limit in limits:
            parts = [values.get(part, "") for part in limit.parts]
            if not all(parts):
                continue
            digest = hmac.new(self.key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:24]
            try:
                count = self.counter.hit(f"{endpoint}:{limit.key}:{digest}", limit.seconds, now)
            except redis.RedisError:
                log.warning("rate-limit store unavailable; letting %s through", endpoint, exc_info=True)
                return None
            if count > max(1, int(limit.count * self.scale)):
                RATE_LIMITED.labels(endpoint, limit.key).inc()
                return max(1, int((now // limit.seconds + 1) * limit.seconds - now + 0.999))
        return None


def make_rate_limiter(redis_url: str | None, scale: float = 1.0, secret: str | None = None) -> RateLimiter:
    """Counters in Redis (with the replicas' shared `secret` as the bucket key) or in this process."""
    key = secret.encode() if secret else None
    return RateLimiter(RedisCounter(redis_url) if redis_url else MemoryCounter(), scale, key)
