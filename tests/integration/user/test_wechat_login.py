"""WeChat login on PostgreSQL through the real code2session adapter and the simulator, races included."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from services.common.db import utcnow
from services.common.errors import DomainError, InvalidInput
from services.common.outbox import outbox
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens, users, wechat_accounts
from services.user.domain import LoginResult
from services.user.tokens import TokenIssuer
from services.user.wechat import WechatAuth
from tests.fakes import SilentSms
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.fixtures.simulator import RunningSimulator
from tests.integration.user.paused import PausedAfter

pytestmark = pytest.mark.integration


@pytest.fixture
def wechat(simulator: RunningSimulator) -> WechatAuth:
    return WechatAuth(simulator.wechat_settings())


def scalar(engine: Engine, query) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_a_wechat_login_registers_once_and_logs_in_after(pg_uow, wechat: WechatAuth, issuer: TokenIssuer,  # type: ignore[no-untyped-def]
                                                         simulator: RunningSimulator, pg_engine: Engine) -> None:
    first = service.login_with_wechat(pg_uow(), wechat, issuer, code=simulator.client.wechat_login_code("o-int-1"))
    again = service.login_with_wechat(pg_uow(), wechat, issuer, code=simulator.client.wechat_login_code("o-int-1"))

    assert (first.is_new_user, again.is_new_user, again.user.id == first.user.id) == (True, False, True)
    assert (scalar(pg_engine, select(func.count()).select_from(users)),
            scalar(pg_engine, select(func.count()).select_from(wechat_accounts)),
            scalar(pg_engine, select(func.count()).select_from(outbox))) == (1, 1, 1)


def test_a_code_used_twice_is_refused_and_registers_nothing_more(pg_uow, wechat: WechatAuth, issuer: TokenIssuer,  # type: ignore[no-untyped-def]
                                                                  simulator: RunningSimulator, pg_engine: Engine) -> None:
    code = simulator.client.wechat_login_code("o-int-2")
    service.login_with_wechat(pg_uow(), wechat, issuer, code=code)

    with pytest.raises(InvalidInput) as refused:
        service.login_with_wechat(pg_uow(), wechat, issuer, code=code)

    assert (refused.value.code, scalar(pg_engine, select(func.count()).select_from(users))) == ("WECHAT_CODE_INVALID", 1)


def test_wechat_busy_is_unavailable_and_changes_nothing(pg_uow, wechat: WechatAuth, issuer: TokenIssuer,  # type: ignore[no-untyped-def]
                                                         simulator: RunningSimulator, pg_engine: Engine) -> None:
    code = simulator.client.wechat_login_code("o-int-3")
    simulator.client.wechat_fail_next(-1)

    with pytest.raises(DomainError) as refused:
        service.login_with_wechat(pg_uow(), wechat, issuer, code=code)

    assert (refused.value.code, scalar(pg_engine, select(func.count()).select_from(users))) == ("WECHAT_UNAVAILABLE", 0)


def test_concurrent_first_logins_of_one_wechat_all_log_into_exactly_one_account(pg_uow, wechat: WechatAuth,  # type: ignore[no-untyped-def]
                                                                         issuer: TokenIssuer,
                                                                         simulator: RunningSimulator,
                                                                         pg_engine: Engine) -> None:
    codes = [simulator.client.wechat_login_code("o-race") for _ in range(8)]
    start = threading.Barrier(len(codes))
    outcomes: list[str] = []

    def log_in(code: str) -> None:
        start.wait()
        try:
            result = service.login_with_wechat(pg_uow(), wechat, issuer, code=code)
            outcomes.append(f"ok:{result.user.id}")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=log_in, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == len(codes) and len(set(outcomes)) == 1 and outcomes[0].startswith("ok:"), outcomes
    assert (scalar(pg_engine, select(func.count()).select_from(users)),
            scalar(pg_engine, select(func.count()).select_from(wechat_accounts)),
            scalar(pg_engine, select(func.count()).select_from(outbox))) == (1, 1, 1)


def test_a_first_login_that_loses_the_race_to_register_logs_into_the_winners_account(
        pg_uow, wechat: WechatAuth, issuer: TokenIssuer, simulator: RunningSimulator,  # type: ignore[no-untyped-def]
        pg_engine: Engine) -> None:
    """The winner has stored the WeChat's binding, not yet committed; the loser, which found no binding either,
    registers its own account and waits on the binding's unique index; the winner commits."""
    winner_uow = PausedAfter(pg_engine, "wechat_accounts", "add")
    winner_code, loser_code = (simulator.client.wechat_login_code("o-double-tap") for _ in range(2))
    results: dict[str, LoginResult | str] = {}

    def log_in(name: str, uow: SqlUserUnitOfWork, code: str) -> None:
        try:
            results[name] = service.login_with_wechat(uow, wechat, issuer, code=code)
        except DomainError as exc:
            results[name] = exc.code

    winner = threading.Thread(target=log_in, args=("winner", winner_uow, winner_code))
    loser = threading.Thread(target=log_in, args=("loser", pg_uow(), loser_code))
    winner.start()
    assert winner_uow.paused.wait(30), "the winner never stored its binding"
    loser.start()
    wait_until_blocked(pg_engine, loser)
    winner_uow.go.set()
    winner.join()
    loser.join()

    first, second = results["winner"], results["loser"]
    assert isinstance(first, LoginResult) and isinstance(second, LoginResult), results
    assert (first.is_new_user, second.is_new_user, second.user.id) == (True, False, first.user.id)
    assert (scalar(pg_engine, select(func.count()).select_from(users)),
            scalar(pg_engine, select(func.count()).select_from(wechat_accounts)),
            scalar(pg_engine, select(func.count()).select_from(outbox)),
            scalar(pg_engine, select(func.count()).select_from(refresh_tokens).where(
                refresh_tokens.c.user_id == first.user.id))) == (1, 1, 1, 2)


def test_a_wechat_login_waiting_on_the_owners_unbind_gets_no_session_on_their_account(  # type: ignore[no-untyped-def]
        pg_uow, wechat: WechatAuth, issuer: TokenIssuer, simulator: RunningSimulator, pg_engine: Engine) -> None:
    """The owner unbinds because someone else may hold the WeChat: a login of it that read the binding before the
    unbind committed, and waited for the user's lock meanwhile, registers a new account instead of starting a
    session on the owner's (which the unbind's ending would have missed)."""
    phone = "13800138123"
    code = service.send_sms_code(pg_uow(), SilentSms(), issuer, phone=phone, purpose="login").dev_code
    owner_id = service.login_with_sms(pg_uow(), issuer, phone=phone, code=code).user.id
    later = utcnow() + timedelta(minutes=2)  # past the one-a-minute wait between codes to the phone
    bind_code = service.send_sms_code(pg_uow(), SilentSms(), issuer, phone=phone, purpose="bind", now=later).dev_code
    service.bind_wechat(pg_uow(), wechat, issuer, user_id=owner_id, code=simulator.client.wechat_login_code("o-held"),
                        sms_code=bind_code, now=later)
    unbind_at = later + timedelta(minutes=2)
    unbind_code = service.send_sms_code(pg_uow(), SilentSms(), issuer, phone=phone, purpose="unbind",
                                        now=unbind_at).dev_code
    unbinding_uow = PausedAfter(pg_engine, "wechat_accounts", "remove")  # binding removed, user locked, not committed
    results: dict[str, object] = {}
    unbinding = start_thread(results, "unbind", lambda: service.unbind_wechat(
        unbinding_uow, issuer, user_id=owner_id, sms_code=unbind_code, keep_session="", now=unbind_at))
    assert unbinding_uow.paused.wait(30)
    holder_code = simulator.client.wechat_login_code("o-held")
    logging_in = start_thread(results, "login", lambda: service.login_with_wechat(pg_uow(), wechat, issuer,
                                                                                 code=holder_code, now=unbind_at))
    wait_until_blocked(pg_engine, logging_in)  # it read the binding and waits for the owner's lock
    unbinding_uow.go.set()
    unbinding.join()
    logging_in.join()

    login = results["login"]
    assert isinstance(login, LoginResult), results
    assert (login.is_new_user, login.user.id != owner_id) == (True, True)
    assert scalar(pg_engine, select(func.count()).select_from(refresh_tokens).where(  # no live session on it
        refresh_tokens.c.user_id == owner_id, refresh_tokens.c.revoked_at.is_(None))) == 0
