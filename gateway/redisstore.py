"""The gateway's Redis connection and the one record of whether it answers, shared by all it keeps there.

Rate-limit counters (gateway/ratelimit.py), ended sessions' marks (gateway/sessions.py) and the catalogue's
change log (gateway/catalog_cache.py) share one connection pool per worker, and one outage: after any of them
fails, none asks Redis again for RETRY_AFTER_SECONDS, so an unreachable Redis costs a worker one client
timeout per period, not one per store on every request. Each then does without: limits counted per worker,
staff tokens refused (503), catalogue pages served uncached. Only a reply from Redis ends an outage: an operation
that returns without asking it (a mark that expired before it could be written) says nothing of whether it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_AFTER_SECONDS = 5.0
TIMEOUT_SECONDS = 0.5  # connect and read: a request waits at most this for a Redis that went away


class RedisUnavailable(Exception):
    """Redis did not answer just now (or failed within the last `retry_after` seconds): do without it."""


class _Replies(threading.local):
    """Whether Redis replied to this thread since RedisStore.call began (each thread runs its own calls)."""

    seen = False


_replies = _Replies()


def note_reply() -> None:
    """Redis replied to a command of this thread: what ends an outage (called for every reply a connection reads)."""
    _replies.seen = True


class _NotingReplies:
    """Mixed into the connection class of a RedisStore's pool (plain, TLS or Unix socket): notes each reply read.
    Error replies raise in read_response, so only a command Redis carried out is noted."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        note_reply()
        return response


def _noting_replies(pool: redis.ConnectionPool) -> None:
    """Make the pool's connections note replies; those it already made (a client used before) are closed first."""
    base = pool.connection_class
    if not issubclass(base, _NotingReplies):
        pool.connection_class = type(f"Noting{base.__name__}", (_NotingReplies, base), {})
        pool.disconnect()
        pool.reset()


class RedisStore:
    """The gateway's Redis client, and whether it is worth asking (a circuit breaker on one monotonic clock)."""

    def __init__(self, client: redis.Redis, retry_after: float = RETRY_AFTER_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        if isinstance(client, redis.Redis):
            _noting_replies(client.connection_pool)
        self.retry_after = retry_after
        self.clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS))

    @property
    def down(self) -> bool:
        """Whether the last call failed (and nothing has answered since)."""
        return self._down

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        """`operation(client)`'s answer; RedisUnavailable when it fails, or without asking while Redis is down."""
        if self._down and self.clock() < self._retry_at:
            raise RedisUnavailable
        _replies.seen = False
        try:
            result = operation(self.client)
        except redis.RedisError as exc:
            self.failed(exc)
            raise RedisUnavailable from exc
        if self._down and _replies.seen:  # returning without asking Redis (nothing to write) ends no outage
            with self._lock:
                if self._down:
                    self._down = False
                    log.warning("Redis answers again: rate limits, session checks and the catalogue cache use it again")
        return result

    def failed(self, exc: BaseException) -> None:
        """Leave Redis alone for `retry_after` seconds (logged once per outage)."""
        with self._lock:
            self._retry_at = self.clock() + self.retry_after
            if not self._down:
                self._down = True
                log.warning("Redis unavailable (%s): rate limits counted per gateway worker, staff tokens refused, "
                            "catalogue served uncached; asked again every %.0fs", type(exc).__name__, self.retry_after)
