"""User use cases on PostgreSQL and SQLite: codes, first-login registration with its event, password login, races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, select

from services.common.errors import Conflict, DomainError, InvalidInput, RateLimited, Unauthenticated
from services.common.outbox import outbox
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens, sms_codes, users
from services.user.domain import PASSWORD_FAILURES, User
from services.user.passwords import Passwords
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.user.paused import PausedAfter

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def count(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


class CountingSms(ConsoleSms):
    def __init__(self) -> None:
        self.sent = 0

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        self.sent += 1


def run_together(work: Callable[[], None], threads: int) -> None:
    """Run `work` on `threads` threads at once (each waits on a barrier inside `work`)."""
    started = [threading.Thread(target=work) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()


def send(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, now: datetime = T0, phone: str = PHONE) -> str:
    return service.send_sms_code(uow(), ConsoleSms(), issuer, phone=phone, purpose="login", now=now).dev_code


def test_first_sms_login_registers_the_user_and_writes_user_registered_in_the_same_transaction(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = send(uow, issuer)

    result = service.login_with_sms(uow(), issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=30))

    assert result.is_new_user is True
    assert count(engine, users) == 1
    with engine.connect() as conn:
        row = conn.execute(select(outbox)).one()
    envelope = EventEnvelope.FromString(row.envelope)
    payload = UserRegistered.FromString(envelope.payload)
    assert (row.event_type, row.aggregate_id, row.published_at) == ("user-registered", str(result.user.id), None)
    assert (payload.user_id, payload.channel) == (result.user.id, "sms")
    assert payload.registered_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=30)
    assert count(engine, refresh_tokens) == 1


def test_second_login_finds_the_same_user_and_emits_nothing(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    first = service.login_with_sms(uow(), issuer, phone=PHONE, code=send(uow, issuer), now=T0)
    later = T0 + timedelta(minutes=2)

    second = service.login_with_sms(uow(), issuer, phone=PHONE, code=send(uow, issuer, later), now=later)

    assert (second.is_new_user, second.user.id) == (False, first.user.id)
    assert count(engine, users) == 1
    assert count(engine, outbox) == 1


def test_wrong_code_creates_no_user_and_counts_the_attempt(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = send(uow, issuer)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    with pytest.raises(InvalidInput) as raised:
        service.login_with_sms(uow(), issuer, phone=PHONE, code=wrong, now=T0)

    assert raised.value.code == "SMS_CODE_INVALID"
    assert count(engine, users) == 0
    assert count(engine, outbox) == 0
    with uow() as check:
        assert check.sms_codes.latest(PHONE, "login").attempts == 1


def test_five_wrong_tries_lock_the_code_even_for_the_right_one(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = send(uow, issuer)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(InvalidInput):
            service.login_with_sms(uow(), issuer, phone=PHONE, code=wrong, now=T0)

    with pytest.raises(InvalidInput) as raised:
        service.login_with_sms(uow(), issuer, phone=PHONE, code=code, now=T0)

    assert raised.value.code == "SMS_CODE_LOCKED"


def test_asking_again_within_a_minute_is_refused_with_the_wait(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    send(uow, issuer)

    with pytest.raises(RateLimited) as raised:
        send(uow, issuer, T0 + timedelta(seconds=20))

    assert raised.value.code == "SMS_RESEND_TOO_SOON"
    assert raised.value.details == {"retry_after": 40}


def test_a_shopper_just_logged_in_by_sms_gets_a_bind_code_at_once(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    """The minute's wait is per phone and purpose: a login code does not hold up the binding that follows it."""
    service.login_with_sms(uow(), issuer, phone=PHONE, code=send(uow, issuer), now=T0)

    bind = service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose="bind",
                                 now=T0 + timedelta(seconds=5))
    with pytest.raises(RateLimited) as again:
        send(uow, issuer, T0 + timedelta(seconds=5))

    assert (len(bind.dev_code), again.value.code, again.value.details) == (6, "SMS_RESEND_TOO_SOON", {"retry_after": 55})


def test_the_ten_a_day_cap_counts_the_codes_of_every_purpose_of_a_phone(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    purposes = ["login", "reset", "bind", "unbind"]
    for sent in range(10):  # a new purpose each time: no wait between them
        service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose=purposes[sent % 4],
                              now=T0 + timedelta(seconds=20 * sent))

    with pytest.raises(RateLimited) as raised:
        service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose="bind", now=T0 + timedelta(hours=1))
    retry_at = T0 + timedelta(hours=1, seconds=raised.value.details["retry_after"])
    again = service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose="bind", now=retry_at)

    # the first code (T0) leaves the day's window 24 hours after it was sent: then one more may go
    assert (raised.value.code, retry_at, len(again.dev_code)) == ("SMS_DAILY_LIMIT", T0 + timedelta(days=1), 6)


def test_concurrent_code_requests_for_one_phone_send_exactly_one(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    barrier = threading.Barrier(8)
    sms = CountingSms()
    outcomes: list[str] = []

    def ask() -> None:
        barrier.wait()
        try:
            service.send_sms_code(uow(), sms, issuer, phone=PHONE, purpose="login", now=T0)
            outcomes.append("sent")
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(ask, 8)

    assert sorted(outcomes) == ["SMS_RESEND_TOO_SOON"] * 7 + ["sent"]
    assert sms.sent == 1
    assert count(engine, sms_codes) == 1


def test_concurrent_wrong_guesses_count_every_try(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = send(uow, issuer)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def guess() -> None:
        barrier.wait()
        try:
            service.login_with_sms(uow(), issuer, phone=PHONE, code=wrong, now=T0)
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(guess, 8)

    assert sorted(outcomes) == ["SMS_CODE_INVALID"] * 5 + ["SMS_CODE_LOCKED"] * 3
    with uow() as check:
        assert check.sms_codes.latest(PHONE, "login").attempts == 5


def test_concurrent_logins_with_one_code_let_exactly_one_through(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = send(uow, issuer)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            service.login_with_sms(uow(), issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=5))
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.code)

    run_together(attempt, 6)

    assert sorted(outcomes) == ["SMS_CODE_EXPIRED"] * 5 + ["ok"]
    assert count(engine, users) == 1
    assert count(engine, outbox) == 1


def test_an_sms_login_waits_for_the_users_row_before_it_locks_the_code(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    """The user's lock before the code's, as every use case takes them (service._redeem_code): a login queued behind
    a transaction of the user (a password reset, a WeChat binding) holds no lock another of them could wait for."""
    service.login_with_sms(pg_uow(), issuer, phone=PHONE, code=send(pg_uow, issuer), now=T0)
    code = send(pg_uow, issuer, T0 + timedelta(minutes=2))
    logged_in: list[int | None] = []
    with pg_engine.connect() as holder, holder.begin():
        holder.execute(select(users.c.id).where(users.c.phone == PHONE).with_for_update())
        login = threading.Thread(target=lambda: logged_in.append(service.login_with_sms(
            pg_uow(), issuer, phone=PHONE, code=code, now=T0 + timedelta(minutes=2)).user.id))
        login.start()
        wait_until_blocked(pg_engine, login)
        with pg_engine.connect() as other, other.begin():
            free = other.execute(select(sms_codes.c.id).where(sms_codes.c.phone == PHONE)
                                 .with_for_update(nowait=True)).all()
    login.join()

    assert (len(free), logged_in) == (2, [1])


def test_a_first_sms_login_racing_a_registration_of_the_phone_keeps_nothing_and_its_code_then_logs_in(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    """No user row to lock yet: the phone's unique index decides, and the code is not spent by the losing try."""
    code = send(pg_uow, issuer)
    paused = PausedAfter(pg_engine, "users", "by_phone")
    outcome: list[str] = []

    def first_login() -> None:
        try:
            service.login_with_sms(paused, issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=5))
        except DomainError as exc:
            outcome.append(exc.code)

    racing = threading.Thread(target=first_login)
    racing.start()
    assert paused.paused.wait(30)
    with pg_uow() as other:  # the phone registered meanwhile (another first login's code, a phone binding)
        other.users.add(User.register(PHONE, T0))
        other.commit()
    paused.go.set()
    racing.join()
    again = service.login_with_sms(pg_uow(), issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=6))

    assert (outcome, again.is_new_user, count(pg_engine, users), count(pg_engine, outbox)) == (
        ["PHONE_TAKEN"], False, 1, 0)


def test_admin_logs_in_with_password_and_gets_the_admin_role(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = Passwords()
    service.create_staff(uow(), passwords, phone="13800000000", role="admin", password="s3cret-pass")

    result = service.login_with_password(uow(), issuer, passwords, phone="13800000000", password="s3cret-pass")

    assert result.roles == {"admin"}
    assert jwt.decode(result.access_token, options={"verify_signature": False})["roles"] == ["admin"]


def test_an_sms_code_never_gives_a_staff_session(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    service.create_staff(uow(), Passwords(), phone="13800000000", role="admin", password="s3cret-pass")
    code = send(uow, issuer, phone="13800000000")

    result = service.login_with_sms(uow(), issuer, phone="13800000000", code=code, now=T0)

    assert result.user.role_set == {"admin"}  # still staff ...
    assert result.roles == frozenset()         # ... but this session is a shopper's
    assert jwt.decode(result.access_token, options={"verify_signature": False})["roles"] == []


@pytest.mark.parametrize("phone, password", [("13800000000", "wrong-pass-1"), ("13700000000", "s3cret-pass")])
def test_wrong_password_and_unknown_phone_get_the_same_answer(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, phone: str, password: str) -> None:
    passwords = Passwords()
    service.create_staff(uow(), passwords, phone="13800000000", role="admin", password="s3cret-pass")

    with pytest.raises(Unauthenticated) as raised:
        service.login_with_password(uow(), issuer, passwords, phone=phone, password=password)

    assert (raised.value.code, raised.value.message) == ("INVALID_CREDENTIALS", "phone or password is wrong")


def test_creating_an_admin_twice_keeps_one_account_and_updates_the_password(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = Passwords()
    service.create_staff(uow(), passwords, phone="13800000000", role="admin", password="first-pass-1")
    service.create_staff(uow(), passwords, phone="13800000000", role="admin", password="second-pass-2")

    result = service.login_with_password(uow(), issuer, passwords, phone="13800000000", password="second-pass-2")

    assert count(engine, users) == 1
    assert result.user.role_set == {"admin"}


def test_registering_a_phone_taken_a_moment_ago_is_a_conflict_not_a_crash(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork]) -> None:
    with uow() as first:
        first.users.add(User.register(PHONE, T0))
        first.commit()

    with uow() as second, pytest.raises(Conflict) as raised:
        second.users.add(User.register(PHONE, T0))

    assert raised.value.code == "PHONE_TAKEN"
    assert count(engine, users) == 1


def test_wrong_current_passwords_are_kept_per_account_and_lock_the_change(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = Passwords()
    staff = service.create_staff(uow(), passwords, phone=PHONE, role="admin", password="oldpass11", now=T0)
    for n in range(PASSWORD_FAILURES.count):
        with pytest.raises(InvalidInput):
            service.change_password(uow(), issuer, passwords, user_id=staff.id or 0, current_password=f"guess{n:04d}",
                                    sms_code=None, new_password="newpass99", now=T0 + timedelta(seconds=n))

    with pytest.raises(RateLimited) as raised:
        service.change_password(uow(), issuer, passwords, user_id=staff.id or 0, current_password="oldpass11",
                                sms_code=None, new_password="newpass99", now=T0 + timedelta(minutes=1))

    assert raised.value.code == "PASSWORD_LOCKED"
    assert service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="oldpass11",
                                       now=T0 + timedelta(minutes=1)).roles == frozenset({"admin"})
