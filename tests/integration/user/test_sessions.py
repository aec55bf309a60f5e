"""Refresh-token rotation, reuse detection and logout on PostgreSQL and SQLite, concurrent refreshes included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from services.common.errors import DomainError
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens
from services.user.domain import LoginResult
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def sms_login(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, now: datetime = T0) -> LoginResult:
    code = service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose="login", now=now).dev_code
    return service.login_with_sms(uow(), issuer, phone=PHONE, code=code, now=now)


def token_states(engine: Engine) -> list[tuple[bool, bool]]:
    """(used, revoked) of every refresh token, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(refresh_tokens.c.used_at, refresh_tokens.c.revoked_at)
                            .order_by(refresh_tokens.c.id)).all()
    return [(used is not None, revoked is not None) for used, revoked in rows]


def test_refresh_rotates_and_a_reuse_revokes_the_family(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                                        issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    refreshed = service.refresh_session(uow(), issuer, refresh_token=login.refresh_token, now=T0)
    assert token_states(engine) == [(True, False), (False, False)]

    with pytest.raises(DomainError) as raised:
        service.refresh_session(uow(), issuer, refresh_token=login.refresh_token, now=T0 + timedelta(minutes=1))

    assert raised.value.code == "REFRESH_TOKEN_REUSED"
    assert token_states(engine) == [(True, True), (False, True)]
    with pytest.raises(DomainError):
        service.refresh_session(uow(), issuer, refresh_token=refreshed.refresh_token, now=T0 + timedelta(minutes=2))


def test_concurrent_refreshes_with_one_token_let_exactly_one_through_and_then_revoke_the_family(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    barrier = threading.Barrier(5)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            service.refresh_session(uow(), issuer, refresh_token=login.refresh_token, now=T0 + timedelta(seconds=5))
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # One rotates; the next is the reuse that revokes the family; the rest find it revoked.
    assert sorted(outcomes) == ["REFRESH_TOKEN_REUSED"] + ["REFRESH_TOKEN_REVOKED"] * 3 + ["ok"]
    assert token_states(engine) == [(True, True), (False, True)]


def test_logout_all_ends_every_live_session_of_the_user(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                                       issuer: TokenIssuer) -> None:
    first = sms_login(uow, issuer)
    sms_login(uow, issuer, now=T0 + timedelta(minutes=2))
    service.refresh_session(uow(), issuer, refresh_token=first.refresh_token, now=T0 + timedelta(minutes=3))

    ended = service.logout_all(uow(), issuer, user_id=first.user.id or 0, now=T0 + timedelta(minutes=4))

    assert (ended, token_states(engine)) == (2, [(True, True), (False, True), (False, True)])
    assert service.logout_all(uow(), issuer, user_id=first.user.id or 0, now=T0 + timedelta(minutes=5)) == 0


def test_logout_ends_one_session(engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    first = sms_login(uow, issuer)
    sms_login(uow, issuer, now=T0 + timedelta(minutes=2))

    assert service.logout(uow(), issuer, refresh_token=first.refresh_token, now=T0 + timedelta(minutes=3)) == 1
    assert token_states(engine) == [(False, True), (False, False)]
