"""Ending a user's sessions while one of theirs is starting (PostgreSQL): the starting one ends too.

A login or refresh paused just before it stores its refresh token stands for one in flight when the owner logs out
everywhere or resets the password (the moment someone who stole the token or the old password gets the most out of).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Self

import pytest
from sqlalchemy import Engine, select

from gateway.sessions import MemorySessionMarks
from services.common import sessions
from services.common.auth import TokenVerifier
from services.common.db import utcnow
from services.common.errors import DomainError
from services.common.sessions import SessionsEnded
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens
from services.user.domain import LoginResult
from services.user.passwords import Passwords
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import first_call_followed_by, pause
from tests.fixtures.keys import JwtKeys
from tests.fixtures.postgres import start_thread, wait_until_blocked

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class PausedSessionStart(SqlUserUnitOfWork):
    """A unit of work whose session start stops just before its refresh token is stored (having set `paused`), until
    `go` is set."""

    def __init__(self, engine: Engine, paused: threading.Event, go: threading.Event) -> None:
        super().__init__(engine, "user")
        self.paused, self.go = paused, go

    def __enter__(self) -> Self:
        super().__enter__()
        self.refresh_tokens.add = first_call_followed_by(  # type: ignore[method-assign]
            self.refresh_tokens.add, pause(self.paused, self.go), before=True)
        return self


def in_flight(pg_engine: Engine, start: Callable[[SqlUserUnitOfWork], LoginResult],
              end: Callable[[], object], *, go_on_after: datetime | None = None) -> list[object]:
    """Start a session, pause it before its refresh token is stored, run `end` meanwhile (until it ends or waits for
    a lock), then let the start go on (once the clock has passed `go_on_after`, if given); the start's result, or
    its refusal's code."""
    paused, go = threading.Event(), threading.Event()
    started: dict[str, object] = {}
    starting = start_thread(started, "start", lambda: start(PausedSessionStart(pg_engine, paused, go)))
    ending = threading.Thread(target=end)
    assert paused.wait(30), "the session start never reached its refresh token"
    ending.start()
    wait_until_blocked(pg_engine, ending)
    if go_on_after is not None:  # the clock, not a race: the start's instant must be over when it commits
        threading.Event().wait(max(0.0, (go_on_after - utcnow()).total_seconds()) + 0.001)
    go.set()
    starting.join()
    ending.join()
    return list(started.values())


def live_refresh_tokens(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(refresh_tokens.c.id).where(refresh_tokens.c.revoked_at.is_(None),
                                                                  refresh_tokens.c.used_at.is_(None))).all())


def sms_login(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, now: datetime = T0) -> LoginResult:
    code = service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose="login", now=now).dev_code
    return service.login_with_sms(uow(), issuer, phone=PHONE, code=code, now=now)


def test_a_refresh_in_flight_when_the_user_logs_out_everywhere_is_ended_too(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)

    started = in_flight(
        pg_engine,
        lambda uow: service.refresh_session(uow, issuer, refresh_token=login.refresh_token,
                                            now=T0 + timedelta(minutes=1)),
        lambda: service.logout_all(pg_uow(), issuer, user_id=login.user.id or 0, now=T0 + timedelta(minutes=2)))

    assert live_refresh_tokens(pg_engine) == 0
    refreshed = started[0]
    assert isinstance(refreshed, LoginResult), started
    with pytest.raises(DomainError) as refused:
        service.refresh_session(pg_uow(), issuer, refresh_token=refreshed.refresh_token, now=T0 + timedelta(minutes=3))
    assert refused.value.code == "REFRESH_TOKEN_REVOKED"


def test_a_login_with_the_old_password_in_flight_during_a_reset_is_ended_by_it(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = Passwords()
    sms_login(pg_uow, issuer)
    first = service.send_sms_code(pg_uow(), ConsoleSms(), issuer, phone=PHONE, purpose="reset", now=T0).dev_code
    service.reset_password(pg_uow(), issuer, passwords, phone=PHONE, code=first, new_password="old-pass-1", now=T0)
    second = service.send_sms_code(pg_uow(), ConsoleSms(), issuer, phone=PHONE, purpose="reset",
                                   now=T0 + timedelta(minutes=2)).dev_code

    started = in_flight(
        pg_engine,
        lambda uow: service.login_with_password(uow, issuer, passwords, phone=PHONE, password="old-pass-1",
                                                now=T0 + timedelta(minutes=3)),
        lambda: service.reset_password(pg_uow(), issuer, passwords, phone=PHONE, code=second,
                                       new_password="new-pass-2", now=T0 + timedelta(minutes=4)))

    assert live_refresh_tokens(pg_engine) == 0, started
    with pytest.raises(DomainError) as refused:
        service.login_with_password(pg_uow(), issuer, passwords, phone=PHONE, password="old-pass-1",
                                    now=T0 + timedelta(minutes=5))
    assert refused.value.code == "INVALID_CREDENTIALS"


def test_a_refresh_that_began_after_a_logout_everywhere_and_committed_first_has_its_access_token_ended_too(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, jwt_keys: JwtKeys) -> None:
    login = sms_login(pg_uow, issuer, now=utcnow())
    refreshed_at = utcnow() + timedelta(milliseconds=300)  # its instant falls after the logout began
    told: list[SessionsEnded] = []

    def log_out_everywhere() -> None:
        with sessions.collecting() as ended:
            service.logout_all(pg_uow(), issuer, user_id=login.user.id or 0)  # the clock's now, as in production
        told.extend(ended)

    started = in_flight(pg_engine, lambda uow: service.refresh_session(uow, issuer, refresh_token=login.refresh_token,
                                                                       now=refreshed_at),
                        log_out_everywhere, go_on_after=refreshed_at)

    refreshed = started[0]
    assert isinstance(refreshed, LoginResult), started
    marks = MemorySessionMarks()
    for notice in told:
        marks.record(notice)
    assert marks.ended(TokenVerifier(jwt_keys.public_pem).verify(refreshed.access_token))
    assert live_refresh_tokens(pg_engine) == 0
