"""Sessions on the in-memory unit of work: refresh-token rotation, reuse detection, logout, logout everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.common.auth import TokenVerifier
from services.user import service
from services.user.domain import LoginResult, RefreshTokenRefused, User
from services.user.tokens import TokenIssuer, token_hash
from tests.fakes import FakePasswords, FakeUserUnitOfWork, SilentSms

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def sms_login(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0, phone: str = PHONE) -> LoginResult:
    code = service.send_sms_code(uow, SilentSms(), issuer, phone=phone, purpose="login", now=now).dev_code
    return service.login_with_sms(uow, issuer, phone=phone, code=code, now=now)


def claims(token: str, verifier: TokenVerifier) -> frozenset[str]:
    return verifier.verify(token).roles


def test_refresh_answers_a_new_pair_in_the_same_family_and_spends_the_old_token(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(minutes=20))

    old, new = uow.refresh_tokens.tokens
    assert (refreshed.refresh_token != login.refresh_token, refreshed.access_token != login.access_token) == (True, True)
    assert (new.token_hash, new.family_id, new.used_at, new.revoked_at) == (
        token_hash(refreshed.refresh_token), old.family_id, None, None)
    assert (old.used_at, new.expires_at) == (T0 + timedelta(minutes=20), T0 + timedelta(minutes=20, days=1))
    assert (refreshed.user.id, refreshed.is_new_user) == (1, False)


def test_a_rotated_token_presented_again_revokes_the_whole_family_and_is_refused(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(minutes=1))

    assert raised.value.code == "REFRESH_TOKEN_REUSED"
    assert [t.revoked_at for t in uow.refresh_tokens.tokens] == [T0 + timedelta(minutes=1)] * 2
    with pytest.raises(RefreshTokenRefused) as again:
        service.refresh_session(uow, issuer, refresh_token=refreshed.refresh_token, now=T0 + timedelta(minutes=2))
    assert again.value.code == "REFRESH_TOKEN_REVOKED"


def test_reuse_revokes_only_that_family(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    phone_a = sms_login(uow, issuer)
    phone_b = sms_login(uow, issuer, now=T0 + timedelta(minutes=2))
    service.refresh_session(uow, issuer, refresh_token=phone_a.refresh_token, now=T0 + timedelta(minutes=3))

    with pytest.raises(RefreshTokenRefused):
        service.refresh_session(uow, issuer, refresh_token=phone_a.refresh_token, now=T0 + timedelta(minutes=4))

    assert service.refresh_session(uow, issuer, refresh_token=phone_b.refresh_token,
                                   now=T0 + timedelta(minutes=5)).user.id == 1


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
def test_an_unknown_refresh_token_is_refused(uow: FakeUserUnitOfWork, issuer: TokenIssuer, token: str) -> None:
    sms_login(uow, issuer)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=token, now=T0)

    assert (raised.value.code, len(uow.refresh_tokens.tokens)) == ("REFRESH_TOKEN_INVALID", 1)


def test_an_expired_refresh_token_is_refused_and_issues_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(days=1))

    assert (raised.value.code, len(uow.refresh_tokens.tokens)) == ("REFRESH_TOKEN_EXPIRED", 1)


def test_refresh_keeps_the_staff_roles_of_a_password_login(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                            verifier: TokenVerifier) -> None:
    passwords = FakePasswords()
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="abcd1234", now=T0)
    now = datetime.now(UTC)  # the access token is verified against the clock
    login = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="abcd1234", now=now)

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=now)

    assert (refreshed.roles, claims(refreshed.access_token, verifier)) == (frozenset({"finance"}),) * 2


def test_refresh_of_an_sms_session_of_a_staff_member_stays_without_roles(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    service.create_staff(uow, FakePasswords(), phone=PHONE, role="admin", password="abcd1234", now=T0)
    login = sms_login(uow, issuer)

    assert service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0).roles == frozenset()


def test_refresh_drops_roles_an_admin_took_away_since_the_login(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    passwords = FakePasswords()
    staff = service.create_staff(uow, passwords, phone=PHONE, role="operator", password="abcd1234", now=T0)
    service.create_staff(uow, passwords, phone="13800000001", role="finance", password="abcd1234", now=T0)
    login = service.login_with_password(uow, issuer, passwords, phone=PHONE, password="abcd1234", now=T0)
    service.set_roles(uow, issuer, actor_id=99, user_id=staff.id or 0, roles=["finance"], now=T0)

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0)

    assert (refreshed.roles, uow.refresh_tokens.tokens[-1].roles) == (frozenset(), "")


def test_logout_revokes_that_family_only(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    first = sms_login(uow, issuer)
    second = sms_login(uow, issuer, now=T0 + timedelta(minutes=2))

    ended = service.logout(uow, issuer, refresh_token=first.refresh_token, now=T0 + timedelta(minutes=3))

    assert (ended, [t.revoked_at for t in uow.refresh_tokens.tokens]) == (1, [T0 + timedelta(minutes=3), None])
    with pytest.raises(RefreshTokenRefused):
        service.refresh_session(uow, issuer, refresh_token=first.refresh_token, now=T0 + timedelta(minutes=4))
    service.refresh_session(uow, issuer, refresh_token=second.refresh_token, now=T0 + timedelta(minutes=4))


def test_logging_out_twice_ends_nothing_the_second_time(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    service.logout(uow, issuer, refresh_token=login.refresh_token, now=T0)

    assert service.logout(uow, issuer, refresh_token=login.refresh_token, now=T0) == 0


def test_logout_with_an_unknown_token_is_refused(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    with pytest.raises(RefreshTokenRefused) as raised:
        service.logout(uow, issuer, refresh_token="nope", now=T0)

    assert raised.value.code == "REFRESH_TOKEN_INVALID"


def test_logout_all_revokes_every_family_of_the_user_and_no_one_elses(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    mine = [sms_login(uow, issuer, now=T0 + timedelta(minutes=2 * i)) for i in range(3)]
    other = sms_login(uow, issuer, phone="13800000002")
    service.refresh_session(uow, issuer, refresh_token=mine[0].refresh_token, now=T0 + timedelta(minutes=7))

    ended = service.logout_all(uow, issuer, user_id=1, now=T0 + timedelta(minutes=8))

    assert ended == 3
    assert [t.revoked_at is not None for t in uow.refresh_tokens.tokens] == [True, True, True, False, True]
    service.refresh_session(uow, issuer, refresh_token=other.refresh_token, now=T0 + timedelta(minutes=9))


def test_refreshed_access_token_names_the_same_user(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                    verifier: TokenVerifier) -> None:
    login = sms_login(uow, issuer, now=datetime.now(UTC))

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=datetime.now(UTC))

    assert jwt.decode(refreshed.access_token, options={"verify_signature": False})["sub"] == "1"
    assert verifier.verify(refreshed.access_token).user_id == 1


def test_users_are_registered_with_a_profile_that_reveals_no_phone(uow: FakeUserUnitOfWork) -> None:
    user = User.register(PHONE, T0)

    assert (user.nickname, user.gender, user.birthday, user.region) == ("用户5678", "unknown", None, "")


# A staff session ends STAFF_SESSION_MAX_HOURS (the unit issuer's default, 12) after its password login

def staff_login(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0) -> LoginResult:
    passwords = FakePasswords()
    service.create_staff(uow, passwords, phone=PHONE, role="finance", password="abcd1234", now=T0)
    return service.login_with_password(uow, issuer, passwords, phone=PHONE, password="abcd1234", now=now)


def refresh_every_hour(uow: FakeUserUnitOfWork, issuer: TokenIssuer, login: LoginResult, hours: int) -> LoginResult:
    session = login
    for hour in range(1, hours + 1):
        session = service.refresh_session(uow, issuer, refresh_token=session.refresh_token,
                                          now=T0 + timedelta(hours=hour))
    return session


def test_a_staff_session_refreshed_every_hour_ends_twelve_hours_after_its_password_login(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    session = refresh_every_hour(uow, issuer, staff_login(uow, issuer), 11)
    last = service.refresh_session(uow, issuer, refresh_token=session.refresh_token,
                                   now=T0 + timedelta(hours=12) - timedelta(microseconds=1))
    issued = len(uow.refresh_tokens.tokens)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=last.refresh_token, now=T0 + timedelta(hours=12))

    assert (raised.value.code, last.roles) == ("REFRESH_TOKEN_EXPIRED", frozenset({"finance"}))
    assert "log in again with your password" in raised.value.message
    assert (len(uow.refresh_tokens.tokens), uow.refresh_tokens.tokens[-1].used_at) == (issued, None)


def test_a_staff_sessions_last_access_token_ends_with_the_session_not_a_full_ttl_after_it(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    session = refresh_every_hour(uow, issuer, staff_login(uow, issuer), 11)
    last = service.refresh_session(uow, issuer, refresh_token=session.refresh_token,
                                   now=T0 + timedelta(hours=12) - timedelta(minutes=5))
    shopper = service.refresh_session(uow, issuer, refresh_token=sms_login(uow, issuer, phone="13800000009").refresh_token,
                                      now=T0 + timedelta(hours=12) - timedelta(minutes=5))

    def expiry(token: str) -> datetime:
        return datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)

    assert (expiry(last.access_token), last.expires_in) == (T0 + timedelta(hours=12), 300)
    assert (expiry(shopper.access_token), shopper.expires_in) == (T0 + timedelta(hours=12, minutes=10), 900)


def test_a_staff_sessions_refresh_tokens_expire_at_its_limit_and_carry_its_login_time(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    refresh_every_hour(uow, issuer, staff_login(uow, issuer), 2)

    assert [(t.created_at, t.expires_at, t.session_started_at) for t in uow.refresh_tokens.tokens] == [
        (T0 + timedelta(hours=hour), T0 + timedelta(hours=12), T0) for hour in range(3)]


def test_a_shoppers_session_refreshed_daily_rolls_on_past_the_staff_limit(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    session = sms_login(uow, issuer)
    for day in range(1, 4):
        session = service.refresh_session(uow, issuer, refresh_token=session.refresh_token,
                                          now=T0 + timedelta(hours=23 * day))

    assert (session.user.id, uow.refresh_tokens.tokens[-1].expires_at, uow.refresh_tokens.tokens[-1].session_started_at
            ) == (1, T0 + timedelta(hours=69 + 24), T0)


def test_an_sms_session_of_a_staff_member_carries_no_roles_and_rolls_on(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    service.create_staff(uow, FakePasswords(), phone=PHONE, role="admin", password="abcd1234", now=T0)
    login = sms_login(uow, issuer)

    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(hours=13))

    assert (refreshed.roles, uow.refresh_tokens.tokens[-1].expires_at) == (frozenset(), T0 + timedelta(days=1, hours=13))


def test_a_staff_session_whose_roles_were_all_taken_away_rolls_on_as_a_shoppers(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = staff_login(uow, issuer)
    service.create_staff(uow, FakePasswords(), phone="13800000001", role="admin", password="abcd1234", now=T0)
    service.set_roles(uow, issuer, actor_id=2, user_id=1, roles=[], now=T0)
    shopper = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(hours=1))

    later = service.refresh_session(uow, issuer, refresh_token=shopper.refresh_token, now=T0 + timedelta(hours=13))

    assert (later.roles, uow.refresh_tokens.tokens[-1].expires_at) == (frozenset(), T0 + timedelta(days=1, hours=13))


def test_a_shorter_staff_limit_ends_sessions_issued_under_the_longer_one(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, private_pem: bytes) -> None:
    login = staff_login(uow, issuer)  # its refresh token expires 12 hours after the login
    stricter = TokenIssuer(private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86_400, staff_session_max_hours=2)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, stricter, refresh_token=login.refresh_token, now=T0 + timedelta(hours=2))

    assert (raised.value.code, "at most 2 hours" in raised.value.message) == ("REFRESH_TOKEN_EXPIRED", True)


def test_a_staff_token_stored_before_login_times_were_kept_counts_its_session_from_its_own_creation(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = staff_login(uow, issuer)
    uow.refresh_tokens.tokens[-1].session_started_at = None  # as a pod of the previous release stored it
    refreshed = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(hours=1))

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=refreshed.refresh_token, now=T0 + timedelta(hours=12))

    assert (uow.refresh_tokens.tokens[-1].session_started_at, raised.value.code) == (T0, "REFRESH_TOKEN_EXPIRED")


def test_a_spent_staff_token_presented_past_the_limit_still_revokes_its_family(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = staff_login(uow, issuer)
    service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(hours=1))

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(hours=13))

    assert (raised.value.code, [t.revoked_at for t in uow.refresh_tokens.tokens]) == (
        "REFRESH_TOKEN_REUSED", [T0 + timedelta(hours=13)] * 2)


def test_a_shoppers_token_presented_again_within_the_grace_window_gives_another_pair_of_the_same_session(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = sms_login(uow, issuer)
    first = service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(minutes=20))

    again = service.refresh_session(uow, issuer, refresh_token=login.refresh_token,
                                    now=T0 + timedelta(minutes=20) + issuer.refresh_reuse_grace - timedelta(microseconds=1))

    spent, *issued = uow.refresh_tokens.tokens
    assert again.refresh_token not in (first.refresh_token, login.refresh_token)
    assert [(t.family_id, t.used_at, t.revoked_at) for t in issued] == [(spent.family_id, None, None)] * 2
    assert spent.used_at == T0 + timedelta(minutes=20)  # the window does not roll on with each presentation
    assert sid(again) == sid(first) == sid(login)


def test_a_staff_sessions_token_presented_again_within_the_grace_window_still_revokes_its_family(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    login = staff_login(uow, issuer)
    service.refresh_session(uow, issuer, refresh_token=login.refresh_token, now=T0 + timedelta(minutes=20))

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, issuer, refresh_token=login.refresh_token,
                                now=T0 + timedelta(minutes=20, seconds=1))

    assert (raised.value.code, [t.revoked_at for t in uow.refresh_tokens.tokens]) == (
        "REFRESH_TOKEN_REUSED", [T0 + timedelta(minutes=20, seconds=1)] * 2)


def test_no_grace_window_makes_every_reuse_revoke_the_family(uow: FakeUserUnitOfWork, private_pem: bytes) -> None:
    strict = TokenIssuer(private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86_400, refresh_reuse_grace_seconds=0)
    login = sms_login(uow, strict)
    service.refresh_session(uow, strict, refresh_token=login.refresh_token, now=T0)

    with pytest.raises(RefreshTokenRefused) as raised:
        service.refresh_session(uow, strict, refresh_token=login.refresh_token, now=T0)

    assert raised.value.code == "REFRESH_TOKEN_REUSED"


def sid(result: LoginResult) -> str:
    return jwt.decode(result.access_token, options={"verify_signature": False})["sid"]
