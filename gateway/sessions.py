"""Session marks: the access tokens whose sessions have ended, checked on every authenticated request.

An access token is verified by its signature (and that answer is cached until it expires), so on its own
it would keep working for its 15 minutes after a logout, a password change or reset, or staff roles taken
away. The user service says which tokens no longer count in the answers of the calls that ended them
(services/common/sessions.py); the gateway's client interceptor hands each notice to `record`, and
`ended` is asked after every verification, cached or not. Two marks per notice kind:

- a user's mark: their tokens issued before an instant (`iat`, with its microseconds) no longer count
  (every session ended: logout-all, a password changed, reset or set by an admin, roles taken away); a
  token issued after it, the new login's or refreshed session's, does;
- a session's mark: the tokens of one refresh-token family (`sid`) no longer count (a logout, a spent
  refresh token presented again).

A mark is kept until every token it names would have expired (the notice's `until`, plus the verifier's
leeway), so there are only as many as sessions ended in the last 15 minutes. With REDIS_URL they are
Redis keys (`mall:sessions:user:<id>`, `mall:sessions:sid:<sid>`) shared by every worker and replica, read
in one MGET per request; without it (`make run`, one gateway process) they live in the process.

When Redis cannot be asked (the shared breaker in gateway/redisstore.py leaves it alone a few seconds after a
failure, as requests must not each wait for the client's timeouts), or has refused to keep a mark that is not
written yet, or refuses the write a staff token's check makes (it may be missing another worker's mark), `ended`
raises SessionMarksUnavailable; the app then refuses staff routes and staff tokens
everywhere (503) and lets shoppers' tokens through (gateway/app.py). A mark Redis refused is also kept in the
worker that received it, so the tokens it names are refused there at once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from gateway.redisstore import RedisStore, RedisUnavailable
from services.common.auth import LEEWAY_SECONDS, Caller
from services.common.sessions import SessionsEnded

log = logging.getLogger(__name__)

USER_KEY = "mall:sessions:user:{}"
SESSION_KEY = "mall:sessions:sid:{}"
# Written with a staff token's check (RedisSessionMarks.ended): whether Redis takes writes.
WRITABLE_KEY = "mall:sessions:writable"
# A user's mark only moves forward: of two notices arriving out of order (two replicas), the later instant holds.
_KEEP_LATEST = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
"""


class SessionMarksUnavailable(Exception):
    """The marks cannot be read now: whether the token's session has ended is unknown."""


class SessionMarks(Protocol):
    def record(self, notice: SessionsEnded) -> None:
        """Keep what `notice` says until its tokens have expired."""

    def ended(self, caller: Caller) -> bool:
        """True when the caller's token no longer counts; SessionMarksUnavailable when that cannot be known."""


class MemorySessionMarks:
    """Marks in this process: without Redis there is one gateway process (`make run`)."""

    def __init__(self, leeway_seconds: float = LEEWAY_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.leeway = leeway_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._users: dict[int, tuple[float, float]] = {}  # user id -> (tokens issued before this end, kept until)
        self._sessions: dict[str, float] = {}  # sid -> kept until

    def record(self, notice: SessionsEnded) -> None:
        now = self.clock()
        until = notice.until + self.leeway
        if until <= now:
            return
        with self._lock:
            self._forget_expired(now)
            if notice.before:
                before, kept_until = self._users.get(notice.user_id, (0.0, 0.0))
                self._users[notice.user_id] = (max(before, notice.before), max(kept_until, until))
            if notice.session_id:
                self._sessions[notice.session_id] = max(self._sessions.get(notice.session_id, 0.0), until)

    def ended(self, caller: Caller) -> bool:
        now = self.clock()
        before, kept_until = self._users.get(caller.user_id, (0.0, 0.0))
        if kept_until > now and caller.issued_at < before:
            return True
        return self._sessions.get(caller.session_id, 0.0) > now if caller.session_id else False

    def _forget_expired(self, now: float) -> None:
        for user_id in [user_id for user_id, (_, until) in self._users.items() if until <= now]:
            del self._users[user_id]
        for session_id in [session_id for session_id, until in self._sessions.items() if until <= now]:
            del self._sessions[session_id]


class RedisSessionMarks:
    """Marks in Redis, shared by every worker and replica; one round trip per check.

    A mark Redis would not take (down, out of memory, a read-only replica after a failover) is kept in this
    process too, so the tokens it names are refused here at once, and is written as soon as Redis takes
    writes again; until then every check here is unknown (staff tokens refused). The other workers and
    replicas do not know of it, but a staff token's check there also writes (_read_marks): while Redis refuses
    writes it is unknown everywhere, and staff tokens are refused everywhere.
    """

    def __init__(self, store: RedisStore, *, leeway_seconds: float = LEEWAY_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.leeway = leeway_seconds
        self.clock = clock
        self._keep_latest = store.client.register_script(_KEEP_LATEST)
        self._kept_here = MemorySessionMarks(leeway_seconds, clock)  # the marks Redis would not take, until expired
        self._unsaved: list[SessionsEnded] = []  # of those, the ones not written to Redis yet, oldest first
        self._lock = threading.Lock()

    def record(self, notice: SessionsEnded) -> None:
        if notice.until + self.leeway <= self.clock():
            return
        try:
            self.store.call(lambda client: self._save(client, notice))
        except RedisUnavailable:
            # The sessions (refresh tokens) are over in the user service; their access tokens are refused here,
            # and everywhere once the mark is written; meanwhile staff tokens are refused (ended raises).
            log.error("session marks: Redis would not take the end of user %s's sessions; kept in this worker "
                      "and written once Redis takes writes", notice.user_id)
            self._kept_here.record(notice)
            with self._lock:
                now = self.clock()
                self._unsaved = [kept for kept in self._unsaved if kept.until + self.leeway > now] + [notice]

    def ended(self, caller: Caller) -> bool:
        if self._kept_here.ended(caller):
            return True
        keys = [USER_KEY.format(caller.user_id)]
        if caller.session_id:
            keys.append(SESSION_KEY.format(caller.session_id))
        try:
            self._save_unsaved()
            values = self.store.call(lambda client: _read_marks(client, keys, probe_writes=bool(caller.roles)))
        except RedisUnavailable:
            raise SessionMarksUnavailable from None
        before = float(values[0]) if values[0] is not None else 0.0
        return caller.issued_at < before or (len(values) > 1 and values[1] is not None)

    def _save_unsaved(self) -> None:
        """Write the marks Redis would not take before (RedisUnavailable while it still will not)."""
        if not self._unsaved:
            return
        with self._lock:
            unsaved, self._unsaved = self._unsaved, []
        try:
            while unsaved:
                self.store.call(functools.partial(self._save, notice=unsaved[0]))
                unsaved.pop(0)
        finally:
            if unsaved:
                with self._lock:
                    self._unsaved[:0] = unsaved

    def _save(self, client: redis.Redis, notice: SessionsEnded) -> None:
        keep_ms = int((notice.until + self.leeway - self.clock()) * 1000)
        if keep_ms <= 0:
            return
        if notice.before:
            self._keep_latest(keys=[USER_KEY.format(notice.user_id)], args=[repr(notice.before), keep_ms])
        if notice.session_id:
            client.set(SESSION_KEY.format(notice.session_id), b"1", px=keep_ms)


def _read_marks(client: redis.Redis, keys: list[str], *, probe_writes: bool) -> list[bytes | None]:
    """The marks under `keys`; with `probe_writes`, in the same round trip a write that fails while Redis refuses
    writes (full under noeviction, a read-only replica after a failover). Then an end another worker was told of may
    be missing from Redis, so a staff token's check counts as unknown, as if Redis were down (fail closed)."""
    if not probe_writes:
        return client.mget(keys)  # type: ignore[return-value]
    pipe = client.pipeline(transaction=False)
    pipe.mget(keys)
    pipe.set(WRITABLE_KEY, b"1", px=60_000)
    values: list[bytes | None] = pipe.execute()[0]  # raises the first error: the refused write
    return values


def make_session_marks(store: RedisStore | None) -> SessionMarks:
    """Redis marks on the gateway's shared connection, or this process's without Redis."""
    if store is None:
        return MemorySessionMarks()
    return RedisSessionMarks(store)
