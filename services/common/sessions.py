"""Ended sessions: which access tokens stop counting before they expire, told by the user service to the gateway.

An access token is checked by its signature alone and lives ACCESS_TOKEN_TTL_SECONDS (15 minutes).
When the user service ends sessions (a logout, a password changed, reset or set by an admin, staff
roles taken away, a spent refresh token presented again) it revokes their refresh tokens in its
database and, once that transaction has committed, says which access tokens no longer count: a
`SessionsEnded` notice per ending, sent in the trailing metadata of the RPC's answer (SESSIONS_ENDED_KEY,
one value per notice, with an error status too: a reused refresh token ends its family, then fails).
The gateway's client interceptor hands every notice it receives to its session marks
(gateway/sessions.py), which each authenticated request is checked against. A notice matters only
until `until`, when every token it names has expired anyway, so the marks stay small.

Use cases call `tell` (through UnitOfWork.on_commit); the gRPC server's interceptor opens `collecting()`
around every call and sends what was told. Outside a call (the create-staff command) no gateway can be
told: the tokens expire on their own.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

SESSIONS_ENDED_KEY = "mall-sessions-ended"  # trailing-metadata key, one value per notice


@dataclass(frozen=True)
class SessionsEnded:
    """Access tokens of `user_id` that no longer count: those issued before `before` (Unix seconds, the user
    service's clock that stamps `iat`; 0 for none by time) and those of the session `session_id` (its refresh
    tokens' family, the `sid` claim; "" for none), until `until`, when they would all have expired anyway."""

    user_id: int
    until: float
    before: float = 0.0
    session_id: str = ""

    def encode(self) -> str:
        """One metadata value (printable ASCII): user, before, session (or -), until."""
        return f"{self.user_id} {self.before!r} {self.session_id or '-'} {self.until!r}"

    @classmethod
    def decode(cls, value: str) -> SessionsEnded:
        """The notice `encode` wrote; ValueError for anything else."""
        user_id, before, session_id, until = value.split(" ")
        return cls(user_id=int(user_id), before=float(before), session_id="" if session_id == "-" else session_id,
                   until=float(until))


_told: contextvars.ContextVar[list[SessionsEnded] | None] = contextvars.ContextVar("sessions_ended", default=None)


@contextmanager
def collecting() -> Iterator[list[SessionsEnded]]:
    """The notices told while the block runs (one RPC), in order."""
    told: list[SessionsEnded] = []
    token = _told.set(told)
    try:
        yield told
    finally:
        _told.reset(token)


def tell(notice: SessionsEnded) -> None:
    """Say that `notice`'s access tokens no longer count; call it once the ending has committed."""
    told = _told.get()
    if told is None:
        log.info("sessions of user %s ended outside a call: no gateway is told, their access tokens expire on "
                 "their own", notice.user_id)
        return
    told.append(notice)


def trailers(notices: Iterable[SessionsEnded]) -> list[tuple[str, str]]:
    return [(SESSIONS_ENDED_KEY, notice.encode()) for notice in notices]


def from_trailers(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[SessionsEnded]:
    """The notices in an answer's trailing metadata (none for most answers)."""
    found = []
    for key, value in metadata or ():
        if key == SESSIONS_ENDED_KEY:
            try:
                found.append(SessionsEnded.decode(value if isinstance(value, str) else value.decode()))
            except ValueError:
                log.error("unreadable %s trailer %r ignored", SESSIONS_ENDED_KEY, value)
    return found
