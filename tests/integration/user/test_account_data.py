"""Profile, addresses, identity and staff roles on PostgreSQL and SQLite: what is stored, and races."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserVerified
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from services.common.errors import DomainError
from services.common.events import timestamp
from services.common.outbox import outbox
from services.user import service
from services.user.db import SqlUserUnitOfWork, addresses, identity_verifications, user_role_changes, users
from services.user.domain import IDENTITY_CHECKS, AddressFields, ProfileChanges, User
from services.user.identity import FormatOnlyIdentityChecker, IdentityKeys, IdentityVault
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords
from tests.fixtures.postgres import start_thread
from tests.integration.user.paused import PausedAfter

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOME = AddressFields(receiver_name="张三", receiver_phone="13800138000", province="广东省", city="深圳市",
                     district="南山区", detail="科技园 1 号")
ID_NUMBER = "11010519491231002X"
VAULT = IdentityVault(IdentityKeys.parse("k1:" + base64.b64encode(bytes([1]) * 32).decode(),
                                         base64.b64encode(bytes([3]) * 32).decode()))


@pytest.fixture
def user_ids(uow: Callable[[], SqlUserUnitOfWork]) -> list[int]:
    """Two registered shoppers."""
    ids = []
    for phone in ("13900000001", "13900000002"):
        with uow() as tx:
            user = User.register(phone, T0)
            tx.users.add(user)
            tx.commit()
            ids.append(user.id or 0)
    return ids


def rows(engine: Engine, query) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def run_together(work: Callable[[int], None], threads: int) -> None:
    barrier = threading.Barrier(threads)

    def run(n: int) -> None:
        barrier.wait()
        work(n)

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()


def test_profile_changes_are_stored(engine: Engine, uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    service.update_profile(uow(), user_id=user_ids[0], now=T0, changes=ProfileChanges(
        nickname="小明", gender="male", birthday=date(1990, 5, 17), region="上海", avatar_url="https://a.example.com/1"))

    profile = service.get_profile(uow(), user_id=user_ids[0])

    assert (profile.user.nickname, profile.user.gender, profile.user.birthday, profile.user.region,
            profile.user.avatar_url, profile.identity_verified, profile.wechat_bound) == (
        "小明", "male", date(1990, 5, 17), "上海市", "https://a.example.com/1", False, False)


def test_concurrent_default_addresses_leave_exactly_one_default(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    me = user_ids[0]
    service.add_address(uow(), user_id=me, fields=HOME, is_default=False, now=T0)

    run_together(lambda n: service.add_address(uow(), user_id=me, fields=replace(HOME, detail=f"楼 {n}"),
                                               is_default=True, now=T0 + timedelta(seconds=n)), 8)

    assert rows(engine, select(func.count()).select_from(addresses).where(addresses.c.user_id == me)) == [(9,)]
    assert rows(engine, select(func.count()).select_from(addresses).where(addresses.c.is_default)) == [(1,)]


def test_concurrent_adds_stop_at_twenty(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                        user_ids: list[int]) -> None:
    outcomes: list[str] = []

    def add(n: int) -> None:
        try:
            service.add_address(uow(), user_id=user_ids[0], fields=HOME, is_default=n % 2 == 0, now=T0)
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(add, 24)

    assert sorted(outcomes) == ["ADDRESS_LIMIT"] * 4 + ["ok"] * 20
    assert rows(engine, select(func.count()).select_from(addresses).where(addresses.c.is_default)) == [(1,)]


def test_deleting_the_default_while_another_is_made_default_leaves_exactly_one(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    me = user_ids[0]
    ids = [service.add_address(uow(), user_id=me, fields=HOME, is_default=False, now=T0 + timedelta(minutes=n)).id
           for n in range(3)]

    run_together(lambda n: service.delete_address(uow(), user_id=me, address_id=ids[0]) if n == 0 else
                 service.change_address(uow(), user_id=me, address_id=ids[n], fields=HOME, is_default=True), 3)

    assert rows(engine, select(func.count()).select_from(addresses).where(addresses.c.is_default)) == [(1,)]
    assert rows(engine, select(func.count()).select_from(addresses)) == [(2,)]


def test_the_database_itself_refuses_a_second_default(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                                      user_ids: list[int]) -> None:
    service.add_address(uow(), user_id=user_ids[0], fields=HOME, is_default=True, now=T0)
    row = {"user_id": user_ids[0], "receiver_name": "x", "receiver_phone": "13800138000", "province": "广东省",
           "city": "深圳市", "district": "南山区", "detail": "xx", "is_default": True, "created_at": T0,
           "updated_at": T0}

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(addresses).values(**row))


def test_another_users_address_is_not_found_and_unchanged(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                                          user_ids: list[int]) -> None:
    theirs = service.add_address(uow(), user_id=user_ids[1], fields=HOME, is_default=True, now=T0)

    with pytest.raises(DomainError) as raised:
        service.change_address(uow(), user_id=user_ids[0], address_id=theirs.id or 0,
                               fields=replace(HOME, detail="改掉"), is_default=True)

    assert raised.value.code == "ADDRESS_NOT_FOUND"
    assert rows(engine, select(addresses.c.user_id, addresses.c.detail)) == [(user_ids[1], HOME.detail)]


def test_a_verification_is_stored_encrypted_with_its_key_id_and_user_verified_in_the_outbox(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    service.verify_identity(uow(), FormatOnlyIdentityChecker(), VAULT, user_id=user_ids[0], real_name="张三",
                            id_number=ID_NUMBER, now=T0)

    [(key_id, name_blob, number_blob, fingerprint)] = rows(engine, select(
        identity_verifications.c.key_id, identity_verifications.c.real_name_ciphertext,
        identity_verifications.c.id_number_ciphertext, identity_verifications.c.id_number_fingerprint))
    assert (key_id, fingerprint) == ("k1", VAULT.fingerprint(ID_NUMBER))
    assert ID_NUMBER.encode() not in bytes(number_blob) and "张三".encode() not in bytes(name_blob)
    assert service.get_verification(uow(), VAULT, user_id=user_ids[0]).id_number_masked == "1101**********002X"
    [(raw, aggregate_id)] = rows(engine, select(outbox.c.envelope, outbox.c.aggregate_id)
                                 .where(outbox.c.event_type == "user-verified"))
    assert (UserVerified.FromString(EventEnvelope.FromString(raw).payload), aggregate_id) == (
        UserVerified(user_id=user_ids[0], verified_at=timestamp(T0)), str(user_ids[0]))


def test_two_accounts_verifying_one_id_number_at_once_let_exactly_one_through(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    outcomes: list[str] = []

    def verify(n: int) -> None:
        try:
            service.verify_identity(uow(), FormatOnlyIdentityChecker(), VAULT, user_id=user_ids[n % 2],
                                    real_name="张三", id_number=ID_NUMBER, now=T0)
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(verify, 6)

    assert outcomes.count("ok") == 1
    assert set(outcomes) - {"ok"} <= {"ID_NUMBER_TAKEN", "IDENTITY_ALREADY_VERIFIED"}
    assert rows(engine, select(func.count()).select_from(identity_verifications)) == [(1,)]
    assert rows(engine, select(func.count()).select_from(outbox).where(outbox.c.event_type == "user-verified")) == [(1,)]


class NoMatch(FormatOnlyIdentityChecker):
    def check(self, real_name: str, id_number: str) -> bool:
        return False


def test_concurrent_identity_checks_of_one_account_stop_at_the_days_budget(
        uow: Callable[[], SqlUserUnitOfWork], user_ids: list[int]) -> None:
    outcomes: list[str] = []

    def verify(n: int) -> None:
        try:
            service.verify_identity(uow(), NoMatch(), VAULT, user_id=user_ids[0], real_name="张三",
                                    id_number=ID_NUMBER, now=T0)
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(verify, IDENTITY_CHECKS.count + 3)

    assert sorted(outcomes) == ["IDENTITY_CHECKS_EXHAUSTED"] * 3 + ["IDENTITY_MISMATCH"] * IDENTITY_CHECKS.count


def test_role_changes_are_audited_in_the_database(engine: Engine, uow: Callable[[], SqlUserUnitOfWork],
                                                  issuer: TokenIssuer, user_ids: list[int]) -> None:
    service.set_roles(uow(), issuer, actor_id=user_ids[1], user_id=user_ids[0], roles=["operator"], now=T0)
    service.set_roles(uow(), issuer, actor_id=user_ids[1], user_id=user_ids[0], roles=["finance", "admin"],
                      now=T0 + timedelta(minutes=1))

    assert rows(engine, select(users.c.roles).where(users.c.id == user_ids[0])) == [("admin,finance",)]
    assert rows(engine, select(user_role_changes.c.actor_id, user_role_changes.c.before, user_role_changes.c.after,
                               user_role_changes.c.changed_at).order_by(user_role_changes.c.id)) == [
        (user_ids[1], "", "operator", T0), (user_ids[1], "operator", "admin,finance", T0 + timedelta(minutes=1))]


def test_two_admins_taking_each_others_admin_role_at_once_leave_one_admin(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = FakePasswords()
    first = service.create_staff(pg_uow(), passwords, phone="13900000011", role="admin", password="adminpass1", now=T0)
    second = service.create_staff(pg_uow(), passwords, phone="13900000012", role="admin", password="adminpass2", now=T0)
    # The first admin's demotion of the second stops once it holds the second's row, until the second admin's
    # demotion of the first (another row: nothing to wait for) has committed.
    paused = PausedAfter(pg_engine, "users", "get")
    outcomes: dict[str, object] = {}
    demoting_second = start_thread(outcomes, "first demotes second", lambda: service.set_roles(
        paused, issuer, actor_id=first.id or 0, user_id=second.id or 0, roles=["finance"], now=T0).user.roles)
    assert paused.paused.wait(30), "the first demotion never locked the second admin's row"
    outcomes["second demotes first"] = service.set_roles(
        pg_uow(), issuer, actor_id=second.id or 0, user_id=first.id or 0, roles=["operator"], now=T0).user.roles
    paused.go.set()
    demoting_second.join()

    assert outcomes == {"second demotes first": "operator", "first demotes second": "LAST_ADMIN"}
    assert rows(pg_engine, select(users.c.roles).where(users.c.roles.contains("admin"))) == [("admin",)]
