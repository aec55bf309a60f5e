"""Every way a session ends tells which access tokens no longer count (services/common/sessions.py), once committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.common import sessions
from services.common.errors import DomainError
from services.common.sessions import SessionsEnded
from services.user import service
from services.user.domain import LoginResult, RefreshTokenRefused
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords, FakeUserUnitOfWork, SilentSms
from tests.unit.user.test_sessions import sms_login

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5, microseconds=250_000)
UNTIL = (LATER + timedelta(seconds=900)).timestamp()  # the unit issuer's access tokens live 900 s


def staff_member(uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords,
                 roles: str = "operator") -> LoginResult:
    """User 1, staff with `roles` (the first one granted by the create-staff command), logged in with the password;
    user 2 is an admin."""
    first, *others = roles.split(",")
    user = service.create_staff(uow, passwords, phone=PHONE, role=first, password="staffpass1", now=T0)
    service.create_staff(uow, passwords, phone="13800000009", role="admin", password="adminpass1", now=T0)
    if others:
        service.set_roles(uow, issuer, actor_id=2, user_id=user.id or 0, roles=roles.split(","), now=T0)
    return service.login_with_password(uow, issuer, passwords, phone=PHONE, password="staffpass1", now=T0)


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_an_access_token_names_its_session_the_refresh_tokens_family(uow: FakeUserUnitOfWork,
                                                                     issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=LATER)

    family = uow.refresh_tokens.tokens[0].family_id
    assert (unverified(login.access_token)["sid"], unverified(refreshed.access_token)["sid"]) == (family, family)


def test_logout_tells_that_the_access_tokens_of_its_session_no_longer_count(uow: FakeUserUnitOfWork,
                                                                           issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)

    with sessions.collecting() as told:
        service.logout(uow, issuer, refresh_token=login.refresh_token, now=LATER)

    assert told == [SessionsEnded(user_id=1, session_id=unverified(login.access_token)["sid"], until=UNTIL)]


def test_logging_out_again_tells_it_again_for_a_retry_after_a_lost_answer(uow: FakeUserUnitOfWork,
                                                                         issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    service.logout(uow, issuer, refresh_token=login.refresh_token, now=T0)

    with sessions.collecting() as told:
        ended = service.logout(uow, issuer, refresh_token=login.refresh_token, now=LATER)

    assert (ended, told) == (0, [SessionsEnded(user_id=1, session_id=unverified(login.access_token)["sid"],
                                               until=UNTIL)])


def test_logout_everywhere_tells_that_the_users_tokens_issued_before_it_no_longer_count(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    sms_login(uow, issuer)

    with sessions.collecting() as told:
        service.logout_all(uow, issuer, user_id=1, now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]


def test_a_reused_refresh_token_tells_its_session_ended_though_the_refresh_fails(uow: FakeUserUnitOfWork,
                                                                                issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0)

    with sessions.collecting() as told, pytest.raises(RefreshTokenRefused):
        service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=LATER)

    assert told == [SessionsEnded(user_id=1, session_id=unverified(login.access_token)["sid"], until=UNTIL)]


def test_a_password_change_ends_older_tokens_but_not_the_session_it_answers(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_member(uow, issuer, passwords)

    with sessions.collecting() as told:
        session = service.change_password(uow, issuer, passwords, user_id=1, current_password="staffpass1",
                                          sms_code=None, new_password="newpass99", now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]
    assert unverified(session.access_token)["iat"] == LATER.timestamp()  # not before it: the new session counts


def test_a_reset_by_sms_code_tells_every_token_before_it_no_longer_counts(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    sms_login(uow, issuer)
    code = service.send_sms_code(uow, SilentSms(), issuer, phone=PHONE, purpose="reset", now=LATER).dev_code

    with sessions.collecting() as told:
        service.reset_password(uow, issuer, passwords, phone=PHONE, code=code, new_password="newpass99", now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]


def test_an_admin_setting_a_staff_password_tells_their_tokens_no_longer_count(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_member(uow, issuer, passwords)

    with sessions.collecting() as told:
        service.set_staff_password(uow, issuer, passwords, actor_id=2, user_id=1, new_password="newpass99",
                                   now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]


@pytest.mark.parametrize("roles", [[], ["finance"], ["operator"]])
def test_a_role_taken_away_ends_the_access_tokens_but_not_the_sessions(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, roles: list[str]) -> None:
    staff_member(uow, issuer, passwords, roles="operator,finance")

    with sessions.collecting() as told:
        service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=roles, now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]
    assert [token.revoked_at for token in uow.refresh_tokens.tokens if token.user_id == 1] == [None]


@pytest.mark.parametrize("roles", [["operator"], ["operator", "finance"]])
def test_roles_kept_or_added_end_the_access_tokens_too_but_not_the_sessions(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords, roles: list[str]) -> None:
    staff_member(uow, issuer, passwords)

    with sessions.collecting() as told:
        service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=roles, now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]
    assert [token.revoked_at for token in uow.refresh_tokens.tokens if token.user_id == 1] == [None]


def test_the_retry_of_a_demotion_whose_answer_was_lost_still_ends_the_access_tokens(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, passwords: FakePasswords) -> None:
    staff_member(uow, issuer, passwords, roles="operator,finance")
    service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=["finance"], now=LATER)  # committed, answer lost

    with sessions.collecting() as told:  # the admin's retry: nothing is left to take away
        service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=["finance"], now=LATER + timedelta(seconds=3))

    assert told == [SessionsEnded(user_id=1, before=(LATER + timedelta(seconds=3)).timestamp(), until=UNTIL + 3)]


def test_a_shoppers_first_staff_role_ends_their_sessions_and_says_so(uow: FakeUserUnitOfWork,
                                                                     issuer: TokenIssuer) -> None:
    sms_login(uow, issuer)

    with sessions.collecting() as told:
        service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=["finance"], now=LATER)

    assert told == [SessionsEnded(user_id=1, before=LATER.timestamp(), until=UNTIL)]
    assert [token.revoked_at for token in uow.refresh_tokens.tokens] == [LATER]


def test_nothing_is_told_when_the_ending_is_refused(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                    passwords: FakePasswords) -> None:
    staff_member(uow, issuer, passwords)

    with sessions.collecting() as told, pytest.raises(DomainError):
        service.set_staff_password(uow, issuer, passwords, actor_id=1, user_id=1, new_password="newpass99",
                                   now=LATER)

    assert told == []
