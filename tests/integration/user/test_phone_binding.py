"""Binding a phone to a WeChat-first account and staff user search on PostgreSQL and SQLite; races on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.common.errors import DomainError
from services.user import service
from services.user.db import SqlUserUnitOfWork, sms_codes, user_lookups, user_phone_changes, users
from services.user.db import wechat_accounts as wechat_accounts_table
from services.user.domain import User, UserSearch
from services.user.identity import IdentityKeys, IdentityVault
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import FakeWechat
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.user.paused import PausedAfter

VAULT = IdentityVault(IdentityKeys.derived_for_dev(b"test"))

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def rows(engine: Engine, query) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def wechat_accounts(uow: Callable[[], SqlUserUnitOfWork], count: int) -> list[int]:
    """`count` WeChat-first accounts (no phone; their WeChat rows left out: binding asks no wx.login code of them,
    tests/unit/user/test_phone_binding.py covers that proof)."""
    ids = []
    for n in range(count):
        with uow() as tx:
            user = User.register_wechat(f"o-first-{n}", T0)
            tx.users.add(user)
            tx.commit()
            ids.append(user.id or 0)
    return ids


def code(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, purpose: str = "bind",
         now: datetime = T0) -> str:
    return service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose=purpose, now=now).dev_code


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except DomainError as exc:
        return exc.code
    return "ok"


def holders(engine: Engine) -> list[int]:
    return [user_id for (user_id,) in rows(engine, select(users.c.id).where(users.c.phone == PHONE))]


def test_a_bound_phone_is_stored_audited_masked_and_logs_into_the_same_account(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    [user_id] = wechat_accounts(uow, 1)

    profile = service.bind_phone(uow(), issuer, FakeWechat(), wechat_code=None, user_id=user_id, phone=PHONE, code=code(uow, issuer),
                                 now=T0 + timedelta(seconds=10))
    login = service.login_with_sms(uow(), issuer, phone=PHONE, code=code(uow, issuer, "login"),
                                   now=T0 + timedelta(seconds=20))

    assert (profile.user.phone, holders(engine)) == (PHONE, [user_id])
    assert rows(engine, select(user_phone_changes.c.user_id, user_phone_changes.c.before, user_phone_changes.c.after,
                               user_phone_changes.c.changed_at)) == [(user_id, "", "139****5678",
                                                                      T0 + timedelta(seconds=10))]
    assert (login.is_new_user, login.user.id, rows(engine, select(func.count()).select_from(users))) == (
        False, user_id, [(1,)])


def test_a_phone_another_account_has_is_refused_and_the_code_is_spent(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    owner = service.login_with_sms(uow(), issuer, phone=PHONE, code=code(uow, issuer, "login"), now=T0).user
    [user_id] = wechat_accounts(uow, 1)
    bind_code = code(uow, issuer)

    refused = outcome(lambda: service.bind_phone(uow(), issuer, FakeWechat(), wechat_code=None, user_id=user_id, phone=PHONE, code=bind_code,
                                                 now=T0 + timedelta(seconds=10)))

    assert (refused, holders(engine), rows(engine, select(user_phone_changes.c.id))) == (
        "PHONE_BOUND_ELSEWHERE", [owner.id], [])
    assert rows(engine, select(sms_codes.c.consumed_at).where(sms_codes.c.purpose == "bind")) == [
        (T0 + timedelta(seconds=10),)]


def test_two_accounts_racing_to_bind_one_phone_with_its_code_let_exactly_one_through(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    racers = wechat_accounts(pg_uow, 6)
    bind_code = code(pg_uow, issuer)
    barrier = threading.Barrier(len(racers))
    outcomes: dict[int, str] = {}

    def bind(user_id: int) -> None:
        barrier.wait()
        outcomes[user_id] = outcome(lambda: service.bind_phone(pg_uow(), issuer, FakeWechat(), wechat_code=None, user_id=user_id, phone=PHONE,
                                                               code=bind_code, now=T0 + timedelta(seconds=10)))

    threads = [threading.Thread(target=bind, args=(user_id,)) for user_id in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [winner] = [user_id for user_id, result in outcomes.items() if result == "ok"]
    assert sorted(outcomes.values()) == ["SMS_CODE_EXPIRED"] * 5 + ["ok"]
    assert holders(pg_engine) == [winner]
    assert rows(pg_engine, select(user_phone_changes.c.user_id)) == [(winner,)]


def test_a_registration_of_the_phone_committed_mid_binding_wins_through_the_unique_index(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    [user_id] = wechat_accounts(pg_uow, 1)
    bind_code = code(pg_uow, issuer)
    results: list[str] = []
    binding = threading.Thread(target=lambda: results.append(outcome(lambda: service.bind_phone(pg_uow(), issuer, FakeWechat(), wechat_code=None, user_id=user_id, phone=PHONE, code=bind_code, now=T0 + timedelta(seconds=10)))))

    with pg_engine.connect() as other:
        other.execute(insert(users).values(phone=PHONE, nickname="用户5678", avatar_url="", roles="", created_at=T0,
                                           gender="unknown", region=""))  # an SMS login's registration, uncommitted
        binding.start()
        wait_until_blocked(pg_engine, binding)  # the binding saw no holder and now waits on the unique index
        other.commit()
    binding.join()

    [registered] = [user_id for (user_id,) in rows(pg_engine, select(users.c.id).where(users.c.nickname == "用户5678"))]
    assert (results, holders(pg_engine), rows(pg_engine, select(user_phone_changes.c.id))) == (
        ["PHONE_BOUND_ELSEWHERE"], [registered], [])


def test_binding_a_wechat_and_the_phone_the_account_has_at_once_take_the_users_lock_first_and_never_deadlock(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    """Both redeem the account's phone's "bind" code. The WeChat binding holds the user's lock when the phone binding
    (a retry of one that bound it) comes: taking the code's lock first, it would wait for the user's while the
    WeChat binding waits for the code's."""
    with pg_uow() as tx:
        user = User.register(PHONE, T0)
        tx.users.add(user)
        tx.commit()
    bind_code = code(pg_uow, issuer)
    wechat = FakeWechat()
    binding_wechat = PausedAfter(pg_engine, "users", "get")  # the user's lock held
    outcomes: dict[str, str] = {}

    def run(name: str, call: Callable[[], object]) -> None:
        try:
            outcomes[name] = outcome(call)
        except DBAPIError as exc:  # the database's refusal, e.g. psycopg's DeadlockDetected
            outcomes[name] = type(exc.orig).__name__

    first = threading.Thread(target=run, args=("wechat", lambda: service.bind_wechat(
        binding_wechat, wechat, issuer, user_id=user.id or 0, code=wechat.code_for("o-bound"), sms_code=bind_code,
        now=T0 + timedelta(seconds=10))))
    second = threading.Thread(target=run, args=("phone", lambda: service.bind_phone(
        pg_uow(), issuer, FakeWechat(), user_id=user.id or 0, phone=PHONE, code=bind_code, wechat_code=None,
        now=T0 + timedelta(seconds=10))))
    first.start()
    assert binding_wechat.paused.wait(30), "the WeChat binding never locked the user"
    second.start()
    wait_until_blocked(pg_engine, second)
    binding_wechat.go.set()
    first.join()
    second.join()

    # The phone binding, let in once the WeChat one committed, finds the account has a WeChat: it must prove it.
    assert outcomes == {"wechat": "ok", "phone": "WECHAT_CODE_REQUIRED"}
    assert rows(pg_engine, select(wechat_accounts_table.c.user_id, wechat_accounts_table.c.openid)) == [
        (user.id, "o-bound")]
    assert rows(pg_engine, select(sms_codes.c.attempts, sms_codes.c.consumed_at.is_not(None))) == [(1, True)]


def test_the_database_itself_refuses_a_phone_on_two_accounts(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    first, second = wechat_accounts(uow, 2)
    service.bind_phone(uow(), issuer, FakeWechat(), wechat_code=None, user_id=first, phone=PHONE, code=code(uow, issuer), now=T0)

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == second).values(phone=PHONE))


# Staff search

def test_staff_search_matches_exact_phone_id_and_literal_nickname_prefix_and_is_audited(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork]) -> None:
    made = []
    for nickname, phone in (("小明", "13900000001"), ("小明_2", "13900000002"), ("小明%", "13900000003"),
                            ("大明", None)):
        with uow() as tx:
            user = User(phone=phone, created_at=T0, nickname=nickname)
            tx.users.add(user)
            tx.commit()
            made.append(user.id)

    def found(**criteria: object) -> tuple[list[int | None], int]:
        users_found, total = service.search_users(uow(), VAULT, actor_id=900, search=UserSearch(**criteria), now=T0)  # type: ignore[arg-type]
        return [user.id for user in users_found], total

    assert found(phone="13900000002") == ([made[1]], 1)
    assert found(user_id=made[3] or 0) == ([made[3]], 1)
    assert found(nickname_prefix="小明") == ([made[2], made[1], made[0]], 3)
    assert found(nickname_prefix="小明_") == ([made[1]], 1)   # "_" and "%" are letters here, not wildcards
    assert found(nickname_prefix="小明%") == ([made[2]], 1)
    assert found(nickname_prefix="小明", offset=1, limit=1) == ([made[1]], 3)
    assert rows(engine, select(user_lookups.c.actor_id, user_lookups.c.criteria, user_lookups.c.user_ids,
                               user_lookups.c.total, user_lookups.c.phone_fingerprint).order_by(user_lookups.c.id))[:2] == [
        (900, "phone=139****0002", str(made[1]), 1, VAULT.phone_fingerprint("13900000002")),
        (900, f"id={made[3]}", str(made[3]), 1, None)]


def test_a_nickname_prefix_search_uses_the_pattern_index(pg_engine: Engine,
                                                         pg_uow: Callable[[], SqlUserUnitOfWork]) -> None:
    executed: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "LIKE" in statement and statement.lstrip().startswith("SELECT users.id"):
            executed.append((statement, parameters))

    event.listen(pg_engine, "before_cursor_execute", record)
    try:
        service.search_users(pg_uow(), VAULT, actor_id=900, search=UserSearch(nickname_prefix="小明_"), now=T0)
    finally:
        event.remove(pg_engine, "before_cursor_execute", record)
    [(statement, parameters)] = executed  # the page query, as the repository sends it

    with pg_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show what it can use
        plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))  # type: ignore[arg-type]

    assert "ix_users_nickname" in plan
