"""Refresh-token rotation, reuse detection and logout on PostgreSQL and SQLite, concurrent refreshes included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
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


def sid(result: LoginResult) -> str:
    return jwt.decode(result.access_token, options={"verify_signature": False})["sid"]


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


def refresh_together(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, refresh_token: str, *, times: int,
                     now: datetime) -> list[LoginResult | str]:
    """`times` refreshes with one token let go at once (as a mini-program's parallel requests do): each one's
    answer, or its error code."""
    barrier = threading.Barrier(times)
    outcomes: list[LoginResult | str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(service.refresh_session(uow(), issuer, refresh_token=refresh_token, now=now))
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_refreshes_with_one_token_all_get_a_pair_that_goes_on_with_the_session(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)

    outcomes = refresh_together(uow, issuer, login.refresh_token, times=5, now=T0 + timedelta(seconds=5))

    assert [isinstance(outcome, LoginResult) for outcome in outcomes] == [True] * 5
    assert token_states(engine) == [(True, False)] + [(False, False)] * 5
    later = [service.refresh_session(uow(), issuer, refresh_token=outcome.refresh_token,
                                     now=T0 + timedelta(minutes=20)) for outcome in outcomes
             if isinstance(outcome, LoginResult)]
    assert len({sid(result) for result in [login, *later]}) == 1  # one session, never revoked


def test_two_refreshes_racing_with_one_token_on_postgresql_both_succeed(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)

    outcomes = refresh_together(pg_uow, issuer, login.refresh_token, times=2, now=T0 + timedelta(seconds=5))

    assert [isinstance(outcome, LoginResult) for outcome in outcomes] == [True, True]
    assert token_states(pg_engine) == [(True, False), (False, False), (False, False)]


def test_a_token_presented_again_within_the_grace_window_gives_another_pair_each_time(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)
    grace = issuer.refresh_reuse_grace

    pairs = [service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0 + offset)
             for offset in (timedelta(0), grace / 2, grace - timedelta(microseconds=1))]

    assert len({pair.refresh_token for pair in pairs}) == 3
    assert token_states(pg_engine) == [(True, False)] + [(False, False)] * 3
    for pair in pairs:  # each goes on, and none is taken for a reuse
        service.refresh_session(pg_uow(), issuer, refresh_token=pair.refresh_token, now=T0 + timedelta(minutes=20))
    assert token_states(pg_engine) == [(True, False)] * 4 + [(False, False)] * 3


def test_a_token_presented_again_as_the_grace_window_ends_revokes_the_family(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)
    service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0)
    service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0 + timedelta(seconds=1))

    with pytest.raises(DomainError) as raised:
        service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token,
                                now=T0 + issuer.refresh_reuse_grace)

    assert raised.value.code == "REFRESH_TOKEN_REUSED"
    assert token_states(pg_engine) == [(True, True), (False, True), (False, True)]


def test_a_token_presented_again_after_its_successor_was_used_revokes_the_family_even_within_the_window(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)
    rotated = service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0)
    service.refresh_session(pg_uow(), issuer, refresh_token=rotated.refresh_token, now=T0 + timedelta(seconds=2))

    with pytest.raises(DomainError) as raised:
        service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0 + timedelta(seconds=3))

    assert raised.value.code == "REFRESH_TOKEN_REUSED"
    assert token_states(pg_engine) == [(True, True), (True, True), (False, True)]


def test_a_token_presented_again_within_the_window_after_a_logout_is_refused(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    login = sms_login(pg_uow, issuer)
    rotated = service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0)
    service.logout(pg_uow(), issuer, refresh_token=rotated.refresh_token, now=T0 + timedelta(seconds=1))

    with pytest.raises(DomainError) as raised:
        service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token, now=T0 + timedelta(seconds=2))

    assert raised.value.code == "REFRESH_TOKEN_REVOKED"
    assert token_states(pg_engine) == [(True, True), (False, True)]


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
