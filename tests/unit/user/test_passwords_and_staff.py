"""Changing and resetting passwords (every session ends), staff roles set by admins and by the command, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common import formats
from services.common.errors import DomainError, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from services.user import service
from services.user.domain import PASSWORD_FAILURES, LoginResult
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords, FakeUserUnitOfWork, SilentSms

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def code_for(uow: FakeUserUnitOfWork, issuer: TokenIssuer, purpose: str, now: datetime, phone: str = PHONE) -> str:
    return service.send_sms_code(uow, SilentSms(), issuer, phone=phone, purpose=purpose, now=now).dev_code


def sms_login(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0) -> LoginResult:
    return service.login_with_sms(uow, issuer, phone=PHONE, code=code_for(uow, issuer, "login", now), now=now)


def live_tokens(uow: FakeUserUnitOfWork) -> int:
    return sum(1 for t in uow.refresh_tokens.tokens if t.revoked_at is None)


def test_a_shopper_sets_a_first_password_with_a_reset_code_and_other_sessions_end(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    sms_login(uow, issuer, T0 + timedelta(minutes=2))
    code = code_for(uow, issuer, "reset", T0 + timedelta(minutes=3))

    session = service.change_password(uow, issuer, passwords, user_id=1, current_password=None, sms_code=code,
                                      new_password="newpass99", now=T0 + timedelta(minutes=4))

    assert (uow.users.users[0].password_hash, session.roles, live_tokens(uow)) == ("plain:newpass99", frozenset(), 1)
    assert uow.refresh_tokens.tokens[-1].token_hash != uow.refresh_tokens.tokens[0].token_hash


def test_the_current_password_proves_a_change_and_keeps_staff_roles(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="oldpass11", now=T0)

    session = service.change_password(uow, issuer, passwords, user_id=1, current_password="oldpass11", sms_code=None,
                                      new_password="newpass99", now=T0)

    assert (uow.users.users[0].password_hash, session.roles) == ("plain:newpass99", frozenset({"finance"}))


def test_a_wrong_current_password_changes_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                  passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="oldpass11", now=T0)
    login = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="oldpass11", now=T0)

    with pytest.raises(InvalidInput) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password="guess1234", sms_code=None,
                                new_password="newpass99", now=T0)

    assert (raised.value.code, raised.value.details) == ("PASSWORD_WRONG", {"current_password": "wrong"})
    assert (uow.users.users[0].password_hash, live_tokens(uow)) == ("plain:oldpass11", 1)
    assert login.refresh_token


def guess(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, current: str,
          now: datetime) -> LoginResult:
    return service.change_password(uow, issuer, passwords, user_id=1, current_password=current, sms_code=None,
                                   new_password="newpass99", now=now)


def test_wrong_current_passwords_lock_the_change_even_to_the_right_one(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="oldpass11", now=T0)
    for n in range(PASSWORD_FAILURES.count):
        with pytest.raises(InvalidInput):
            guess(uow, issuer, passwords, f"guess{n:04d}", T0 + timedelta(seconds=n))

    with pytest.raises(RateLimited) as raised:
        guess(uow, issuer, passwords, "oldpass11", T0 + timedelta(minutes=10))

    assert (raised.value.code, raised.value.details) == ("PASSWORD_LOCKED", {"retry_after": 3000})
    assert uow.users.users[0].password_hash == "plain:oldpass11"


def test_the_password_change_lock_lifts_when_the_window_moves_on(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="oldpass11", now=T0)
    for n in range(PASSWORD_FAILURES.count):
        with pytest.raises(InvalidInput):
            guess(uow, issuer, passwords, f"guess{n:04d}", T0)

    session = guess(uow, issuer, passwords, "oldpass11", T0 + PASSWORD_FAILURES.window + timedelta(seconds=1))

    assert session.roles == frozenset({"admin"})


def test_an_account_without_a_password_must_use_an_sms_code(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                            passwords: FakePasswords) -> None:
    sms_login(uow, issuer)

    with pytest.raises(InvalidInput) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password="anything1", sms_code=None,
                                new_password="newpass99", now=T0)

    assert (raised.value.code, uow.users.users[0].password_hash) == ("PASSWORD_NOT_SET", None)


@pytest.mark.parametrize(("current", "code"), [(None, None), ("oldpass11", "123456")], ids=["neither", "both"])
def test_exactly_one_proof_is_required(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords,
                                       current: str | None, code: str | None) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password=current, sms_code=code,
                                new_password="newpass99", now=T0)

    assert raised.value.code == "PASSWORD_PROOF_REQUIRED"


def test_a_weak_new_password_is_refused_naming_new_password(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                            passwords: FakePasswords) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password="oldpass11", sms_code=None,
                                new_password="password", now=T0)

    assert (raised.value.code, raised.value.details, raised.value.message) == (
        "PASSWORD_TOO_WEAK", {"new_password": "too weak"},
        f"new_password must be {formats.PASSWORD_RULE}")


def test_a_login_code_does_not_prove_a_password_change(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                       passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    login_code = code_for(uow, issuer, "login", T0 + timedelta(minutes=2))

    with pytest.raises(InvalidInput) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password=None, sms_code=login_code,
                                new_password="newpass99", now=T0 + timedelta(minutes=2))

    assert (raised.value.code, uow.users.users[0].password_hash) == ("SMS_CODE_INVALID", None)


def test_reset_sets_the_password_and_ends_every_session(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                        passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    sms_login(uow, issuer, T0 + timedelta(minutes=2))
    code = code_for(uow, issuer, "reset", T0 + timedelta(minutes=3))

    ended = service.reset_password(uow, issuer, passwords, phone=PHONE, code=code, new_password="newpass99",
                                   now=T0 + timedelta(minutes=3))

    assert (ended, live_tokens(uow), uow.users.users[0].password_hash) == (2, 0, "plain:newpass99")


def test_a_wrong_reset_code_counts_a_try_and_changes_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                             passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    code = code_for(uow, issuer, "reset", T0 + timedelta(minutes=3))
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    with pytest.raises(InvalidInput):
        service.reset_password(uow, issuer, passwords, phone=PHONE, code=wrong, new_password="newpass99",
                               now=T0 + timedelta(minutes=3))

    assert (uow.sms_codes.codes[-1].attempts, live_tokens(uow), uow.users.users[0].password_hash) == (1, 1, None)


def test_a_reset_for_a_phone_without_an_account_is_not_found(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                             passwords: FakePasswords) -> None:
    code = code_for(uow, issuer, "reset", T0)

    with pytest.raises(NotFound) as raised:
        service.reset_password(uow, issuer, passwords, phone=PHONE, code=code, new_password="newpass99", now=T0)

    assert (raised.value.code, uow.users.count(), uow.sms_codes.codes[0].consumed_at) == ("USER_NOT_FOUND", 0, T0)


# Staff passwords: set by an admin, never by an SMS code

def test_staff_cannot_reset_their_password_with_an_sms_code_and_the_code_is_spent(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="oldpass11", now=T0)
    code = code_for(uow, issuer, "reset", T0)

    with pytest.raises(Forbidden) as raised:
        service.reset_password(uow, issuer, passwords, phone=PHONE, code=code, new_password="newpass99", now=T0)

    assert (raised.value.code, raised.value.message) == ("STAFF_PASSWORD_BY_ADMIN", "staff passwords are set by an admin")
    assert (uow.users.users[0].password_hash, uow.sms_codes.codes[0].consumed_at) == ("plain:oldpass11", T0)


def test_staff_cannot_change_their_password_with_an_sms_code(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                             passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="oldpass11", now=T0)
    code = code_for(uow, issuer, "reset", T0)

    with pytest.raises(Forbidden) as raised:
        service.change_password(uow, issuer, passwords, user_id=1, current_password=None, sms_code=code,
                                new_password="newpass99", now=T0)

    assert (raised.value.code, uow.users.users[0].password_hash) == ("STAFF_PASSWORD_BY_ADMIN", "plain:oldpass11")


def test_an_admin_sets_a_staff_password_audited_and_their_sessions_end(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["finance"], now=T0)  # ends the shopper's sessions
    sms_login(uow, issuer, T0 + timedelta(minutes=2))

    ended = service.set_staff_password(uow, issuer, passwords, actor_id=9, user_id=1, new_password="staffpass1", now=T0)

    assert (ended, live_tokens(uow), uow.users.users[0].password_hash) == (1, 0, "plain:staffpass1")
    assert [(r.user_id, r.actor_id, r.set_at) for r in uow.password_sets.records] == [(1, 9, T0)]


# A password an admin sets is one-time: its owner changes it, with an SMS code to their phone, before it logs in

def staff_with_password_set_by_admin(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["finance"], now=T0)
    service.set_staff_password(uow, issuer, passwords, actor_id=9, user_id=1, new_password="staffpass1", now=T0)


def test_a_password_an_admin_set_starts_no_session(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                   passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    issued = len(uow.refresh_tokens.tokens)

    with pytest.raises(Forbidden) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1",
                                    now=T0 + timedelta(minutes=1))

    assert (raised.value.code, raised.value.details) == (
        "PASSWORD_CHANGE_REQUIRED", {"new_password": "required", "sms_code": "required"})
    assert (len(uow.refresh_tokens.tokens), uow.users.users[0].password_hash) == (issued, "plain:staffpass1")


def test_a_wrong_password_is_still_invalid_credentials_while_a_change_is_required(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)

    with pytest.raises(Unauthenticated) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="guessed11", now=T0)

    assert raised.value.code == "INVALID_CREDENTIALS"


def test_the_owner_changes_the_admins_password_with_a_reset_code_and_logs_in_with_their_roles(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    sms_login(uow, issuer, T0 + timedelta(minutes=1))  # a shopper session of theirs, by SMS
    code = code_for(uow, issuer, "reset", T0 + timedelta(minutes=2))

    session = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1",
                                          new_password="mypass2026", sms_code=code, now=T0 + timedelta(minutes=3))

    assert (session.roles, uow.users.users[0].password_hash, uow.users.users[0].password_change_required,
            live_tokens(uow)) == (frozenset({"finance"}), "plain:mypass2026", False, 1)
    again = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="mypass2026",
                                        now=T0 + timedelta(minutes=4))
    assert again.roles == frozenset({"finance"})


def test_the_admins_password_with_a_wrong_code_changes_nothing_and_the_try_counts(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    code = code_for(uow, issuer, "reset", T0 + timedelta(minutes=1))
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    with pytest.raises(InvalidInput) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1",
                                    new_password="mypass2026", sms_code=wrong, now=T0 + timedelta(minutes=2))

    assert (raised.value.code, uow.users.users[0].password_hash, uow.users.users[0].password_change_required,
            uow.sms_codes.codes[-1].attempts, live_tokens(uow)) == (
        "SMS_CODE_INVALID", "plain:staffpass1", True, 1, 0)


def test_a_login_code_does_not_change_the_admins_password(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    code = code_for(uow, issuer, "login", T0 + timedelta(minutes=1))

    with pytest.raises(InvalidInput):
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1",
                                    new_password="mypass2026", sms_code=code, now=T0 + timedelta(minutes=2))

    assert uow.users.users[0].password_hash == "plain:staffpass1"


@pytest.mark.parametrize(("new_password", "sms_code", "code"), [
    ("mypass2026", "", "SMS_CODE_INVALID"), ("", "123456", "PASSWORD_TOO_WEAK"), ("password", "123456",
                                                                                "PASSWORD_TOO_WEAK")])
def test_a_change_at_login_needs_a_strong_new_password_and_a_code(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, new_password: str, sms_code: str,
        code: str) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)

    with pytest.raises(InvalidInput) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1",
                                    new_password=new_password, sms_code=sms_code, now=T0)

    assert (raised.value.code, uow.users.users[0].password_hash) == (code, "plain:staffpass1")


def test_a_change_at_login_is_refused_when_none_is_required(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="oldpass11", now=T0)
    code = code_for(uow, issuer, "reset", T0)

    with pytest.raises(InvalidInput) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="oldpass11",
                                    new_password="newpass99", sms_code=code, now=T0)

    assert (raised.value.code, uow.users.users[0].password_hash, len(uow.refresh_tokens.tokens)) == (
        "PASSWORD_CHANGE_NOT_REQUIRED", "plain:oldpass11", 0)


def test_the_owner_may_instead_change_the_admins_password_from_an_sms_session(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    sms_login(uow, issuer, T0 + timedelta(minutes=1))

    session = service.change_password(uow, issuer, passwords, user_id=1, current_password="staffpass1",
                                      sms_code=None, new_password="mypass2026", now=T0 + timedelta(minutes=2))

    assert (session.roles, uow.users.users[0].password_change_required) == (frozenset({"finance"}), False)


def test_the_staff_command_sets_a_password_that_logs_in_at_once(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_with_password_set_by_admin(uow, issuer, passwords)
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="cmdpass11", now=T0)

    assert service.login_with_password(uow, issuer, passwords, phone=PHONE, password="cmdpass11",
                                       now=T0).roles == frozenset({"finance"})


@pytest.mark.parametrize(("roles", "actor", "new_password", "code"), [
    ([], 9, "staffpass1", "NOT_STAFF"), (["finance"], 1, "staffpass1", "OWN_PASSWORD"),
    (["finance"], 9, "password", "PASSWORD_TOO_WEAK")], ids=["shopper", "own", "weak"])
def test_an_admin_sets_only_another_staff_members_password_to_a_strong_one(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, roles: list[str], actor: int,
        new_password: str, code: str) -> None:
    sms_login(uow, issuer)
    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=roles, now=T0)

    with pytest.raises(DomainError) as raised:
        service.set_staff_password(uow, issuer, passwords, actor_id=actor, user_id=1, new_password=new_password, now=T0)

    assert (raised.value.code, uow.users.users[0].password_hash, uow.password_sets.records) == (code, None, [])


# Staff

def test_an_admin_sets_roles_and_the_change_is_audited(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                       passwords: FakePasswords) -> None:
    sms_login(uow, issuer)

    done = service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["operator", "finance", "operator"], now=T0)

    assert done.user.roles == "finance,operator"
    assert [(c.user_id, c.actor_id, c.before, c.after, c.changed_at) for c in uow.role_changes.records] == [
        (1, 9, "", "finance,operator", T0)]


def sms_set_password(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, password: str) -> None:
    """A shopper registers by SMS, then (or whoever holds the phone) sets a password with a reset code."""
    sms_login(uow, issuer)
    service.reset_password(uow, issuer, passwords, phone=PHONE, code=code_for(uow, issuer, "reset", T0),
                           new_password=password, now=T0)


def test_a_shoppers_first_staff_role_clears_their_password_ends_their_sessions_and_says_so_in_the_audit(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_set_password(uow, issuer, passwords, "phonepass1")
    service.login_with_password(uow, issuer, passwords, phone=PHONE, password="phonepass1", now=T0)

    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["operator"], now=T0)

    assert (uow.users.users[0].password_hash, live_tokens(uow)) == (None, 0)
    assert [(c.before, c.after, c.password_cleared) for c in uow.role_changes.records] == [("", "operator", True)]


def test_making_a_shopper_staff_answers_that_their_password_was_cleared_and_how_many_sessions_ended(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    sms_login(uow, issuer)
    sms_login(uow, issuer, T0 + timedelta(minutes=2))  # a second device: two sessions live

    done = service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["operator"], now=T0 + timedelta(minutes=3))

    assert (done.password_cleared, done.sessions_ended, live_tokens(uow)) == (True, 2, 0)


def test_after_the_first_staff_role_the_sms_set_password_logs_in_no_more_and_sms_gives_a_shopper_session(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_set_password(uow, issuer, passwords, "phonepass1")
    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["operator"], now=T0)

    with pytest.raises(Unauthenticated) as raised:
        service.login_with_password(uow, issuer, passwords, phone=PHONE, password="phonepass1", now=T0)
    by_sms = sms_login(uow, issuer, T0 + timedelta(minutes=2))

    assert (raised.value.code, by_sms.roles) == ("INVALID_CREDENTIALS", frozenset())


@pytest.mark.parametrize("roles", [["finance"], ["finance", "admin"], []], ids=["another", "one more", "none"])
def test_changing_staff_roles_or_removing_them_all_keeps_the_password_and_the_sessions(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, roles: list[str]) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="operator", password="staffpass1", now=T0)
    service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1", now=T0)

    done = service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=roles, now=T0)

    assert (done.password_cleared, done.sessions_ended) == (False, 0)
    assert (uow.users.users[0].password_hash, live_tokens(uow)) == ("plain:staffpass1", 1)
    assert [c.password_cleared for c in uow.role_changes.records] == [False, False]


def test_setting_the_same_roles_again_records_no_change(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    sms_login(uow, issuer)
    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["finance"], now=T0)

    service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["finance"], now=T0)

    assert len(uow.role_changes.records) == 1


def test_an_unknown_role_is_400_and_nothing_changes(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    sms_login(uow, issuer)

    with pytest.raises(InvalidInput) as raised:
        service.set_roles(uow, issuer, actor_id=9, user_id=1, roles=["finance", "root"], now=T0)

    assert (raised.value.code, uow.users.users[0].roles, uow.role_changes.records) == ("ROLE_INVALID", "", [])


def test_roles_of_an_unknown_user_are_not_found(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    with pytest.raises(NotFound):
        service.set_roles(uow, issuer, actor_id=9, user_id=5, roles=[], now=T0)


@pytest.mark.parametrize("roles", [["operator"], ["admin", "finance"], []])
def test_an_admin_cannot_change_their_own_roles(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords,
                                                roles: list[str]) -> None:
    admin = service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass1", now=T0)

    with pytest.raises(DomainError) as raised:
        service.set_roles(uow, issuer, actor_id=admin.id or 0, user_id=admin.id or 0, roles=roles, now=T0)

    assert (raised.value.code, admin.roles, len(uow.role_changes.records)) == ("OWN_ROLES", "admin", 1)


def test_the_admin_role_of_the_last_admin_cannot_be_taken_and_nothing_changes(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    admin = service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass1", now=T0)

    # The actor's own admin role was taken a moment ago (its token still says admin): no admin would be left.
    with pytest.raises(DomainError) as raised:
        service.set_roles(uow, issuer, actor_id=9, user_id=admin.id or 0, roles=["operator"], now=T0)

    assert (raised.value.code, admin.roles, len(uow.role_changes.records)) == ("LAST_ADMIN", "admin", 1)


def test_an_admin_without_a_password_does_not_count_as_the_one_left(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    admin = service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass1", now=T0)
    code = service.send_sms_code(uow, SilentSms(), issuer, phone="13900000002", purpose="login", now=T0).dev_code
    shopper = service.login_with_sms(uow, issuer, phone="13900000002", code=code, now=T0).user
    made = service.set_roles(uow, issuer, actor_id=admin.id or 0, user_id=shopper.id or 0, roles=["admin"], now=T0)
    assert made.password_cleared  # no staff login until an admin sets the new admin's password

    # An admin whose own role was taken a moment ago (token still says admin) takes the last one who can log in.
    with pytest.raises(DomainError) as raised:
        service.set_roles(uow, issuer, actor_id=9, user_id=admin.id or 0, roles=["operator"], now=T0)

    assert (raised.value.code, admin.roles) == ("LAST_ADMIN", "admin")


def test_an_admin_takes_the_admin_role_of_another_while_one_is_left(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    first = service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass1", now=T0)
    second = service.create_staff(uow, passwords, phone="13900000002", role="admin", password="adminpass2", now=T0)

    done = service.set_roles(uow, issuer, actor_id=first.id or 0, user_id=second.id or 0, roles=["finance"], now=T0)

    assert (done.user.roles, first.roles) == ("finance", "admin")


def test_create_staff_makes_a_password_account_with_the_role_audited_as_the_command(
        uow: FakeUserUnitOfWork, passwords: FakePasswords) -> None:
    staff = service.create_staff(uow, passwords, phone=PHONE, role="customer_service", password="staffpass1", now=T0)

    assert (staff.roles, staff.nickname, staff.password_hash) == ("customer_service", "员工", "plain:staffpass1")
    assert [(c.actor_id, c.before, c.after) for c in uow.role_changes.records] == [(None, "", "customer_service")]


def test_create_staff_adds_a_role_to_an_existing_account(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                         passwords: FakePasswords) -> None:
    sms_login(uow, issuer)

    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="staffpass1", now=T0)
    staff = service.create_staff(uow, passwords, phone=PHONE, role="operator", password="staffpass1", now=T0)

    assert (uow.users.count(), staff.roles, staff.nickname) == (1, "finance,operator", "用户5678")


def test_a_password_set_by_the_command_ends_the_sessions_started_with_the_old_one(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="leakedpass1", now=T0)
    stolen = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="leakedpass1", now=T0)

    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="freshpass22",
                         now=T0 + timedelta(minutes=1))

    with pytest.raises(Unauthenticated) as refused:
        service.refresh_session(uow, issuer, refresh_token=stolen.refresh_token, now=T0 + timedelta(minutes=2))
    assert (refused.value.code, live_tokens(uow)) == ("REFRESH_TOKEN_REVOKED", 0)


def test_a_password_the_command_sets_on_an_existing_account_is_audited_as_the_commands(
        uow: FakeUserUnitOfWork, passwords: FakePasswords) -> None:
    admin = service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass1", now=T0)

    service.create_staff(uow, passwords, phone=PHONE, role="admin", password="adminpass2",
                         now=T0 + timedelta(minutes=1))

    assert [(s.user_id, s.actor_id, s.set_at) for s in uow.password_sets.records] == [
        (admin.id, None, T0 + timedelta(minutes=1))]


def test_create_staff_refuses_an_unknown_role(uow: FakeUserUnitOfWork, passwords: FakePasswords) -> None:
    with pytest.raises(InvalidInput):
        service.create_staff(uow, passwords, phone=PHONE, role="root", password="staffpass1", now=T0)

    assert uow.users.count() == 0
