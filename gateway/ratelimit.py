"""Sliding-window rate limits: shared in Redis when REDIS_URL is set, in process memory otherwise or while Redis is down."""

from __future__ import annotations

import bisect
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import redis

from gateway.metrics import RATE_LIMIT_STORE_FALLBACKS, RATE_LIMITED
from gateway.redisstore import RedisStore, RedisUnavailable

log = logging.getLogger(__name__)

# Parts of a limit's key known from the connection alone (client_values), so counted before the body is read.
CLIENT_PARTS = frozenset({"ip", "ipv6_48", "global"})
# ... and known once the caller is authenticated (caller_values), so counted before the body is read too.
CALLER_PARTS = frozenset({"user"})


def clock() -> float:
    """The wall clock windows are cut from (a function of its own, so tests can hold it still)."""
    return time.time()


DAY = 86_400  # seconds: the window of daily limits and budgets


@dataclass(frozen=True)
class Limit:
    """At most `count` events in any `seconds` (a sliding window) for each value of `key`.

    `key` names what is counted: "ip" (the client address: IPv4, or the IPv6 /64), "ipv6_48" (the
    IPv6 /48 of a site; IPv4 clients have none), "global" (every client together), "user" (the authenticated
    caller's user id: never a body field of that name), a JSON body field such as "phone", or several joined by "+"
    ("phone+ip": per phone from each address). A request lacking any part is not counted under this limit (an
    anonymous caller under "user"). Body fields are read only after the body validated.

    Each route counts apart, unless `scope` names a count that the routes declaring it share (two routes serving
    one search must not allow twice the searches).
    """

    key: str
    count: int
    seconds: int
    scope: str = ""

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("+"))

    @property
    def client_only(self) -> bool:
        """True when the limit needs nothing from the body, so it can run before validation."""
        return set(self.parts) <= CLIENT_PARTS

    @property
    def before_body(self) -> bool:
        """True when the limit needs nothing from the body but maybe the caller: it runs once they are known."""
        return set(self.parts) <= CLIENT_PARTS | CALLER_PARTS


class Counter(Protocol):
    """Sliding-window event logs, one per bucket, each keeping only the newest `count` events of its window.

    The newest `count` are all a decision needs: the window is full exactly when the `count`-th newest
    event is younger than `seconds`, and it has room again when that event turns `seconds` old.
    """

    def take(self, bucket: str, count: int, seconds: int, now: float, event: str = "") -> float | None:
        """Log one event unless `count` happened in the last `seconds`: None if logged, else when there is room.
        `event` names it for `forget` (unnamed events are never forgotten)."""

    def forget(self, bucket: str, event: str) -> None:
        """Drop the event `take` logged under the name `event`, if it is still held (nothing otherwise)."""

    def add(self, bucket: str, count: int, seconds: int, now: float) -> None:
        """Log one event whatever the window holds (an outcome known after the fact: a failed login)."""

    def full_until(self, bucket: str, count: int, seconds: int, now: float) -> float | None:
        """When `count` events happened in the last `seconds`: the time the window has room again; else None."""


# What names the bucket of a "global" limit (RateLimiter._bucket: "<endpoint>:global/<seconds>:<digest>").
GLOBAL_BUCKET = ":global/"


class MemoryCounter:
    """Per-process logs: right for one gateway process (make run), not for several replicas.

    At most MAX_BUCKETS buckets, kept in order of use: past it, a new bucket evicts the one used longest ago (a
    live one loses its count: the price of bounded memory) and every ended window right behind it. Each bucket is
    evicted once, so a take costs O(1) amortized however many buckets there are (it holds the worker's one lock).
    The buckets of "global" limits (the shop's daily SMS and real-name budgets) are never evicted: there are as
    many as the routes declare, and a flood of one-off client buckets must not reset a budget already spent.
    """

    MAX_BUCKETS = 50_000

    def __init__(self) -> None:
        # bucket -> (event times oldest first, seconds), the bucket used longest ago first
        self._buckets: OrderedDict[str, tuple[list[float], int]] = OrderedDict()
        self._global: dict[str, tuple[list[float], int]] = {}  # the global limits' buckets, never evicted
        self._named: dict[str, dict[str, float]] = {}  # bucket -> {event name: its time} within its window
        self._lock = threading.Lock()

    def take(self, bucket: str, count: int, seconds: int, now: float, event: str = "") -> float | None:
        with self._lock:
            events = self._events(bucket, seconds, now)
            if len(events) >= count:
                return events[-count] + seconds
            self._log(bucket, events, count, seconds, now)
            if event:
                named = self._named.setdefault(bucket, {})
                for old in [name for name, at in named.items() if at <= now - seconds]:  # left the window
                    del named[old]
                named[event] = now
        return None

    def forget(self, bucket: str, event: str) -> None:
        with self._lock:
            at = self._named.get(bucket, {}).pop(event, None)
            events, _ = self._store(bucket).get(bucket, ([], 0))
            if at is not None and at in events:
                events.remove(at)  # one event of that instant: which one does not matter to a count

    def add(self, bucket: str, count: int, seconds: int, now: float) -> None:
        with self._lock:
            self._log(bucket, self._events(bucket, seconds, now), count, seconds, now)

    def full_until(self, bucket: str, count: int, seconds: int, now: float) -> float | None:
        with self._lock:
            events = self._events(bucket, seconds, now)
        return events[-count] + seconds if len(events) >= count else None

    def _events(self, bucket: str, seconds: int, now: float) -> list[float]:
        """The bucket's events younger than `seconds` (an event `seconds` old has left the window); the bucket is
        now the most recently used."""
        store = self._store(bucket)
        events, _ = store.get(bucket, ([], seconds))
        if bucket in self._buckets:
            self._buckets.move_to_end(bucket)
        return events[bisect.bisect_right(events, now - seconds):]

    def _log(self, bucket: str, events: list[float], count: int, seconds: int, now: float) -> None:
        store = self._store(bucket)
        if store is self._buckets and bucket not in store:
            self._make_room(now)
        bisect.insort(events, now)
        store[bucket] = (events[-count:], seconds)  # a new bucket goes last; a used one was moved there

    def _store(self, bucket: str) -> dict[str, tuple[list[float], int]]:
        return self._global if GLOBAL_BUCKET in bucket else self._buckets

    def _make_room(self, now: float) -> None:
        """Room for one more bucket when MAX_BUCKETS are held: the bucket used longest ago goes, and with it every
        bucket behind it whose window has ended."""
        if len(self._buckets) < self.MAX_BUCKETS:
            return
        while self._buckets:
            oldest, (events, seconds) = next(iter(self._buckets.items()))
            if len(self._buckets) < self.MAX_BUCKETS and events and events[-1] > now - seconds:
                return
            del self._buckets[oldest]
            self._named.pop(oldest, None)


# One round trip, atomic across replicas: count the events still in the window (those not older than `seconds`),
# then (by mode) report whether it is full, log the event if it is not, or log it anyway; drop the events that left
# the window and keep the newest `count`. Scores are event times; a full window answers the `count`-th newest's score
# (a string: Lua numbers become integers). Reads come first and the ZADD is the first write: a full Redis (maxmemory,
# noeviction) checks only a script's first write against maxmemory, so it refuses this one (the worker then counts
# alone) instead of letting a removal through first and every write after it, past maxmemory.
SLIDING_WINDOW_SCRIPT = """
local key, now, seconds, count, mode = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local gone = now - seconds
local logged = redis.call('ZCARD', key)
if mode ~= 'add' and logged - redis.call('ZCOUNT', key, '-inf', gone) >= count then
  return redis.call('ZRANGE', key, logged - count, logged - count, 'WITHSCORES')[2]
end
if mode == 'peek' then
  return false
end
redis.call('ZADD', key, now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', gone)
redis.call('ZREMRANGEBYRANK', key, 0, -count - 1)
redis.call('PEXPIRE', key, math.ceil(seconds * 1000))
return false
"""


class RedisCounter:
    """Logs shared by every gateway replica: one sorted set per bucket, expiring a window after its last event."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = self.client.register_script(SLIDING_WINDOW_SCRIPT)

    def take(self, bucket: str, count: int, seconds: int, now: float, event: str = "") -> float | None:
        return self._run("take", bucket, count, seconds, now, event)

    def forget(self, bucket: str, event: str) -> None:
        self.client.zrem(self._key(bucket), self._member(event))

    def add(self, bucket: str, count: int, seconds: int, now: float) -> None:
        self._run("add", bucket, count, seconds, now)

    def full_until(self, bucket: str, count: int, seconds: int, now: float) -> float | None:
        return self._run("peek", bucket, count, seconds, now)

    def _run(self, mode: str, bucket: str, count: int, seconds: int, now: float, event: str = "") -> float | None:
        member = self._member(event) if event else f"{now!r}:{uuid.uuid4().hex[:8]}"
        oldest = self._script(keys=[self._key(bucket)], args=[repr(now), seconds, count, mode, member])
        return None if oldest is None else float(oldest) + seconds

    @staticmethod
    def _key(bucket: str) -> str:
        return f"mall:ratelimit:{bucket}"

    @staticmethod
    def _member(event: str) -> str:
        return f"named:{event}"  # never one of the unnamed members, "<time>:<hex>"


class FallbackCounter:
    """Redis, and this process's own memory while Redis is unreachable.

    Limits stay in force through an outage, counted per gateway worker (so N workers let N times
    through) instead of not at all. The store's breaker (gateway/redisstore.py) leaves Redis alone a
    while after a failure, so an unreachable store costs one timeout per period, not one per request.
    """

    def __init__(self, primary: RedisCounter, fallback: MemoryCounter, store: RedisStore) -> None:
        self.primary = primary
        self.fallback = fallback
        self.store = store

    def take(self, bucket: str, count: int, seconds: int, now: float, event: str = "") -> float | None:
        return self._call("take", bucket, count, seconds, now, *([event] if event else []))

    def forget(self, bucket: str, event: str) -> None:
        # Both: the event is in whichever store took it. A Redis that does not answer keeps it, which only counts
        # one event too many until it leaves its window.
        self.fallback.forget(bucket, event)
        try:
            self.store.call(lambda _: self.primary.forget(bucket, event))
        except RedisUnavailable:
            RATE_LIMIT_STORE_FALLBACKS.inc()

    def add(self, bucket: str, count: int, seconds: int, now: float) -> None:
        self._call("add", bucket, count, seconds, now)

    def full_until(self, bucket: str, count: int, seconds: int, now: float) -> float | None:
        return self._call("full_until", bucket, count, seconds, now)

    def _call(self, operation: str, bucket: str, count: int, seconds: int, now: float, *event: str) -> float | None:
        try:
            result: float | None = self.store.call(
                lambda _: getattr(self.primary, operation)(bucket, count, seconds, now, *event))
            return result
        except RedisUnavailable:
            RATE_LIMIT_STORE_FALLBACKS.inc()
            fallback: float | None = getattr(self.fallback, operation)(bucket, count, seconds, now, *event)
            return fallback


class RateLimiter:
    def __init__(self, counter: Counter, scale: float = 1.0, key: bytes | None = None) -> None:
        self.counter = counter
        self.scale = scale  # GATEWAY_RATE_LIMIT_SCALE: multiplies every limit's count
        # Bucket names are HMACs under this key: a phone number's plain hash is easily reversed
        # (there are only about 10^10 of them). Replicas sharing Redis must share the key.
        self.key = key if key is not None else os.urandom(32)

    def check(self, endpoint: str, limits: tuple[Limit, ...], values: Mapping[str, str],
              now: float | None = None) -> int | None:
        """Count the request under each limit in turn; at the first one that is full, the seconds to wait.

        A refused request is not counted under that limit (nor the ones after it), so a client
        that keeps knocking still gets `count` in every `seconds`. Values are keyed-hashed into
        the bucket names: no phone number or address sits in the store.
        """
        now = clock() if now is None else now
        for limit in limits:
            bucket = self._bucket(endpoint, limit, values)
            if bucket is None:
                continue
            room_at = self.counter.take(bucket, self.allowed(limit), limit.seconds, now)
            if room_at is not None:
                RATE_LIMITED.labels(endpoint, limit.key).inc()
                return seconds_until(room_at, now)
        return None

    def hold(self, endpoint: str, limit: Limit, values: Mapping[str, str],
             now: float | None = None) -> tuple[int | None, Held | None]:
        """Log one event under `limit` now, unless its window is full, atomically (requests in flight together each
        see the others'): (seconds to wait, None) when full, else (None, the event, for `release` when it turns
        out not to count; None when `values` lack a part of the key and nothing was logged)."""
        now = clock() if now is None else now
        bucket = self._bucket(endpoint, limit, values)
        if bucket is None:
            return None, None
        held = Held(bucket, uuid.uuid4().hex)
        room_at = self.counter.take(bucket, self.allowed(limit), limit.seconds, now, held.event)
        return (None, held) if room_at is None else (seconds_until(room_at, now), None)

    def release(self, held: Held) -> None:
        """Forget an event `hold` logged: it did not count after all."""
        self.counter.forget(held.bucket, held.event)

    def full(self, endpoint: str, limit: Limit, values: Mapping[str, str], now: float | None = None) -> int | None:
        """When the events `count` logged under `limit` for `values` fill its window: the seconds until
        there is room; else (or when `values` lack a part of the key) None."""
        now = clock() if now is None else now
        bucket = self._bucket(endpoint, limit, values)
        room_at = None if bucket is None else self.counter.full_until(bucket, self.allowed(limit), limit.seconds, now)
        return None if room_at is None else seconds_until(room_at, now)

    def happened(self, endpoint: str, limit: Limit, values: Mapping[str, str], now: float | None = None) -> bool:
        """Whether any event was logged under `limit` for `values` in the last `limit.seconds` (not scaled)."""
        bucket = self._bucket(endpoint, limit, values)
        return bucket is not None and self.counter.full_until(
            bucket, 1, limit.seconds, clock() if now is None else now) is not None

    def count(self, endpoint: str, limit: Limit, values: Mapping[str, str], now: float | None = None) -> None:
        """Log one event (a failed login, a successful one, a code sent...) under `limit` after the fact."""
        bucket = self._bucket(endpoint, limit, values)
        if bucket is not None:
            self.counter.add(bucket, self.allowed(limit), limit.seconds, clock() if now is None else now)

    def allowed(self, limit: Limit) -> int:
        return max(1, int(limit.count * self.scale))

    def _bucket(self, endpoint: str, limit: Limit, values: Mapping[str, str]) -> str | None:
        parts = [values.get(part, "") for part in limit.parts]
        if not all(parts):
            return None
        digest = hmac.new(self.key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{limit.scope or endpoint}:{limit.key}/{limit.seconds}:{digest}"  # a global limit's holds GLOBAL_BUCKET


@dataclass(frozen=True)
class Held:
    """An event RateLimiter.hold logged, by name, so that it can be released."""

    bucket: str
    event: str


@dataclass(frozen=True)
class GuardedTry:
    """What FailureGuard.admit decided: `wait` seconds when refused; else the failure `held` in advance (None for a
    trusted address), which FailureGuard.record settles."""

    wait: int | None
    held: Held | None = None


@dataclass(frozen=True)
class FailureGuard:
    """A per-account ceiling on failures that cannot be used to lock the owner out.

    Once `failures.count` failures happened in the last `failures.seconds`, further tries are
    refused, but only from addresses that have not succeeded for this account within the last
    `trusted.seconds` (each success renews its address's trust): an attacker guessing from many
    addresses is stopped, while the owner's usual addresses still get in.

    A try from an address not trusted is logged as a failure when it is admitted, in one atomic step with the
    check, and released if it succeeds or ends undecided: tries in flight together count each other, so no
    more than `failures.count` of them get through however many are sent at once. (Checked first and counted
    after the answer, every try of a burst saw the count before any of them failed.)
    """

    failures: Limit  # e.g. Limit("phone", 20, 3600)
    trusted: Limit   # e.g. Limit("phone+ip", 1, 30 days): an address that logged in lately (its count unused)

    def admit(self, limiter: RateLimiter, endpoint: str, values: Mapping[str, str]) -> GuardedTry:
        """Whether this try may go on (`wait` None) and, for an address not trusted, its failure held in advance."""
        if limiter.happened(endpoint, self.trusted, values):
            return GuardedTry(None)
        wait, held = limiter.hold(endpoint, self.failures, values)
        if wait is not None:
            RATE_LIMITED.labels(endpoint, f"failed-{self.failures.key}").inc()
        return GuardedTry(wait, held)

    def record(self, limiter: RateLimiter, endpoint: str, values: Mapping[str, str], admitted: GuardedTry, *,
               succeeded: bool | None) -> None:
        """Settle an admitted try: `succeeded` True (its address is trusted from now on), False (a failure: counted,
        if not held already), None (no answer either way: it is no failure)."""
        if succeeded is False:
            if admitted.held is None:
                limiter.count(endpoint, self.failures, values)
            return
        if admitted.held is not None:
            limiter.release(admitted.held)
        if succeeded:
            limiter.count(endpoint, self.trusted, values)


def seconds_until(moment: float, now: float) -> int:
    """Whole seconds from `now` until `moment`, at least 1 (a Retry-After)."""
    return max(1, math.ceil(moment - now - 1e-9))


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


def client_values(remote_addr: str | None) -> dict[str, str]:
    """The key parts known from the connection: "ip", "ipv6_48" (IPv6 only: a site's usual allocation,
    65,536 /64s) and "global"."""
    values = {"ip": client_address(remote_addr), "global": "all"}
    if "/" in values["ip"]:
        values["ipv6_48"] = str(ipaddress.IPv6Network(values["ip"]).supernet(new_prefix=48))
    return values


def caller_values(user_id: int) -> dict[str, str]:
    """The key parts known from the authenticated caller: "user" (none for an anonymous caller or a service's
    token, user id 0)."""
    return {"user": str(user_id)} if user_id else {}


def make_rate_limiter(store: RedisStore | None, scale: float = 1.0, secret: str | None = None) -> RateLimiter:
    """Counters in Redis (with the replicas' shared `secret` as the bucket key, and this process's
    memory while Redis is down) or in this process only."""
    if store is not None and not secret:
        raise ValueError("Redis rate-limit counters need the replicas' shared secret")
    key = secret.encode() if secret else None
    counter: Counter = (FallbackCounter(RedisCounter(store.client), MemoryCounter(), store) if store is not None
                        else MemoryCounter())
    return RateLimiter(counter, scale, key)
