"""Fixed-window rate limits: shared in Redis when REDIS_URL is set, in process memory otherwise."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from gateway.metrics import RATE_LIMITED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per `seconds`, counted per value of `key`.

    `key` is "ip" (the client address) or the name of a JSON body field such as "phone"; a
    request without that field is not counted under this limit.
    """

    key: str
    count: int
    seconds: int


class Counter(Protocol):
    def hit(self, bucket: str, limit: Limit, now: float) -> int | None:
        """Count one request; returns seconds to wait when the limit is exceeded, else None."""


class MemoryCounter:
    """Per-process counters: right for one gateway process (make run), not for several replicas."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str, limit: Limit, now: float) -> int | None:
        window = int(now // limit.seconds)
        with self._lock:
            if len(self._windows) > 100_000:  # drop finished windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] >= window - 1}
            start, count = self._windows.get(bucket, (window, 0))
            count = count + 1 if start == window else 1
            self._windows[bucket] = (window, count)
        return _retry_after(count, limit, window, now)


class RedisCounter:
    """Counters shared by every gateway replica (INCR + EXPIRE per window)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def hit(self, bucket: str, limit: Limit, now: float) -> int | None:
        window = int(now // limit.seconds)
        key = f"mall:ratelimit:{bucket}:{window}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, limit.seconds + 1)
        count, _ = pipe.execute()
        return _retry_after(int(count), limit, window, now)


def _retry_after(count: int, limit: Limit, window: int, now: float) -> int | None:
    if count <= limit.count:
        return None
    return max(1, int((window + 1) * limit.seconds - now + 0.999))


class RateLimiter:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def check(self, endpoint: str, limits: tuple[Limit, ...], values: dict[str, str]) -> int | None:
        """Count the request under each limit whose key has a value; the longest wait if any is exceeded.

        If the shared counter store is down the request is let through (and logged): losing
        rate limiting for a while is better than refusing every login.
        """
        waits = []
        for limit in limits:
            value = values.get(limit.key)
            if not value:
                continue
            try:
                wait = self.counter.hit(f"{endpoint}:{limit.key}:{value}", limit, time.time())
            except redis.RedisError:
                log.warning("rate-limit store unavailable; letting %s through", endpoint, exc_info=True)
                return None
            if wait is not None:
                RATE_LIMITED.labels(endpoint, limit.key).inc()
                waits.append(wait)
        return max(waits) if waits else None


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RateLimiter(RedisCounter(redis_url) if redis_url else MemoryCounter())
