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

When Redis cannot be asked, `ended` raises SessionMarksUnavailable (for `retry_after` seconds without
asking again, as requests must not each wait for the client's timeouts); the app then refuses staff routes and
staff tokens everywhere (503) and lets shoppers' tokens through (gateway/app.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from services.common.auth import Caller
from services.common.sessions import SessionsEnded

log = logging.getLogger(__name__)

USER_KEY = "mall:sessions:user:{}"
SESSION_KEY = "mall:sessions:sid:{}"
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

    def __init__(self, leeway_seconds: float = 10.0, clock: Callable[[], float] = time.time) -> None:
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
    """Marks in Redis, shared by every worker and replica; one round trip per check."""

    def __init__(self, client: redis.Redis, *, leeway_seconds: float = 10.0, retry_after: float = 5.0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.leeway = leeway_seconds
        self.retry_after = retry_after
        self.clock = clock
        self.monotonic = monotonic
        self._keep_latest = client.register_script(_KEEP_LATEST)
        self._down_until = 0.0

    def record(self, notice: SessionsEnded) -> None:
        keep_ms = int((notice.until + self.leeway - self.clock()) * 1000)
        if keep_ms <= 0:
            return
        try:
            if notice.before:
                self._keep_latest(keys=[USER_KEY.format(notice.user_id)], args=[repr(notice.before), keep_ms])
            if notice.session_id:
                self.client.set(SESSION_KEY.format(notice.session_id), b"1", px=keep_ms)
        except redis.RedisError:
            # The sessions (refresh tokens) are over in the user service; their access tokens work on until they
            # expire, at most ACCESS_TOKEN_TTL_SECONDS, except on staff routes, refused while Redis is down.
            log.error("session marks: Redis unavailable; the access tokens of user %s's ended sessions stay valid "
                      "until they expire", notice.user_id, exc_info=True)

    def ended(self, caller: Caller) -> bool:
        if self.monotonic() < self._down_until:
            raise SessionMarksUnavailable
        keys = [USER_KEY.format(caller.user_id)]
        if caller.session_id:
            keys.append(SESSION_KEY.format(caller.session_id))
        try:
            values = self.client.mget(keys)
        except redis.RedisError:
            self._down_until = self.monotonic() + self.retry_after
            log.warning("session marks: Redis unavailable; staff routes refused for %.0fs", self.retry_after,
                        exc_info=True)
            raise SessionMarksUnavailable from None
        before = float(values[0]) if values[0] is not None else 0.0
        return caller.issued_at < before or (len(values) > 1 and values[1] is not None)


def make_session_marks(client: redis.Redis | None, leeway_seconds: float) -> SessionMarks:
    """Redis marks on the gateway's shared connection, or this process's without Redis."""
    if client is None:
        return MemorySessionMarks(leeway_seconds)
    return RedisSessionMarks(client, leeway_seconds=leeway_seconds)
