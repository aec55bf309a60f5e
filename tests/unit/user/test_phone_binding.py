"""Binding a phone to a WeChat-first account (U2): a "bind" SMS code, never another account's phone, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import Conflict, DomainError, Forbidden, InvalidInput
from services.user import service
from services.user.domain import User, WechatAccount
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords, FakeUserUnitOfWork, FakeWechat, SilentSms

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def wechat_user(uow: FakeUserUnitOfWork) -> int:
    """A WeChat-first account: no phone, its WeChat bound."""
    return wechat_first(uow, "o-wechat-first")


def wechat_first(uow: FakeUserUnitOfWork, openid: str) -> int:
    user = User.register_wechat(openid, T0)
    uow.users.add(user)
    assert user.id is not None
    uow.wechat_accounts.add(WechatAccount(user_id=user.id, appid=FakeWechat.appid, openid=openid, unionid=None,
                                          bound_at=T0))
    return user.id


def code_for(uow: FakeUserUnitOfWork, issuer: TokenIssuer, purpose: str = "bind", phone: str = PHONE,
             now: datetime = T0) -> str:
    return service.send_sms_code(uow, SilentSms(), issuer, phone=phone, purpose=purpose, now=now).dev_code


def bind(uow: FakeUserUnitOfWork, issuer: TokenIssuer, user_id: int, code: str, phone: str = PHONE,
         now: datetime = T0 + timedelta(seconds=30), openid: str | None = None) -> service.Profile:
    """Bind as the account's owner: with a wx.login code of its WeChat (of `openid` instead, if given)."""
    wechat, account = FakeWechat(), uow.wechat_accounts.of_user(user_id)
    openid = openid or (account.openid if account else None)
    return service.bind_phone(uow, issuer, wechat, user_id=user_id, phone=phone, code=code,
                              wechat_code=wechat.code_for(openid) if openid else None, now=now)


def refusal(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as raised:
        call()
    return raised.value.code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_wechat_first_account_binds_a_phone_with_a_bind_code_and_the_change_is_audited(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    profile = bind(uow, issuer, wechat_user, code_for(uow, issuer))

    assert (profile.user.id, profile.user.phone, uow.users.get(wechat_user).phone) == (wechat_user, PHONE, PHONE)
    assert [(c.user_id, c.before, c.after, c.changed_at) for c in uow.phone_changes.records] == [
        (wechat_user, "", "139****5678", T0 + timedelta(seconds=30))]
    assert uow.sms_codes.latest(PHONE, "bind").consumed_at == T0 + timedelta(seconds=30)


def test_after_binding_an_sms_login_with_the_phone_reaches_the_same_account(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    bind(uow, issuer, wechat_user, code_for(uow, issuer))

    login = service.login_with_sms(uow, issuer, phone=PHONE, code=code_for(uow, issuer, "login"),
                                   now=T0 + timedelta(minutes=1))

    assert (login.is_new_user, login.user.id, len(uow.users.users), uow.published) == (False, wechat_user, 1, [])


def test_after_binding_a_forgotten_password_can_be_reset_with_the_phone(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    bind(uow, issuer, wechat_user, code_for(uow, issuer))

    service.reset_password(uow, issuer, FakePasswords(), phone=PHONE, code=code_for(uow, issuer, "reset"),
                           new_password="newpass99", now=T0 + timedelta(minutes=1))

    assert uow.users.get(wechat_user).password_hash == "plain:newpass99"


def test_after_binding_a_password_can_be_set_with_a_reset_code(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    bind(uow, issuer, wechat_user, code_for(uow, issuer))

    service.change_password(uow, issuer, FakePasswords(), user_id=wechat_user, current_password=None,
                            sms_code=code_for(uow, issuer, "reset"), new_password="newpass99",
                            now=T0 + timedelta(minutes=1))

    assert uow.users.get(wechat_user).password_hash == "plain:newpass99"


def test_a_phone_of_another_account_is_a_conflict_that_moves_nothing_and_spends_the_code(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    owner = service.login_with_sms(uow, issuer, phone=PHONE, code=code_for(uow, issuer, "login"), now=T0).user
    code = code_for(uow, issuer)

    with pytest.raises(Conflict) as raised:
        bind(uow, issuer, wechat_user, code)

    assert (raised.value.code, raised.value.kind.value) == ("PHONE_BOUND_ELSEWHERE", "conflict")
    assert ([u.phone for u in uow.users.users], owner.phone, uow.phone_changes.records) == ([None, PHONE], PHONE, [])
    assert refusal(lambda: bind(uow, issuer, wechat_user, code)) == "SMS_CODE_EXPIRED"


def test_a_wrong_code_for_a_taken_phone_says_only_that_the_code_is_wrong(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    service.login_with_sms(uow, issuer, phone=PHONE, code=code_for(uow, issuer, "login"), now=T0)

    assert refusal(lambda: bind(uow, issuer, wechat_user, wrong(code_for(uow, issuer)))) == "SMS_CODE_INVALID"


def test_an_account_with_another_phone_cannot_change_it_here(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    user = service.login_with_sms(uow, issuer, phone="13800000001", code=code_for(uow, issuer, "login", "13800000001"),
                                  now=T0).user
    assert user.id is not None

    with pytest.raises(Conflict) as raised:
        bind(uow, issuer, user.id, code_for(uow, issuer))

    assert (raised.value.code, user.phone, uow.phone_changes.records) == ("PHONE_ALREADY_BOUND", "13800000001", [])


def test_binding_the_phone_the_account_has_changes_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                           wechat_user: int) -> None:
    bind(uow, issuer, wechat_user, code_for(uow, issuer))

    again = bind(uow, issuer, wechat_user, code_for(uow, issuer, now=T0 + timedelta(minutes=2)),
                 now=T0 + timedelta(minutes=3))

    assert (again.user.phone, len(uow.phone_changes.records)) == (PHONE, 1)


@pytest.mark.parametrize("purpose", ["login", "reset", "unbind", "signup"])
def test_a_code_of_another_purpose_does_not_bind(uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int,
                                                 purpose: str) -> None:
    code = code_for(uow, issuer, purpose)

    assert refusal(lambda: bind(uow, issuer, wechat_user, code)) == "SMS_CODE_INVALID"
    assert uow.users.get(wechat_user).phone is None


def test_a_wrong_code_counts_a_try_and_binds_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                     wechat_user: int) -> None:
    code = code_for(uow, issuer)

    assert refusal(lambda: bind(uow, issuer, wechat_user, wrong(code))) == "SMS_CODE_INVALID"
    assert (uow.sms_codes.latest(PHONE, "bind").attempts, uow.users.get(wechat_user).phone, uow.commits) == (
        1, None, 2)  # the code's sending, then the failed try


def test_an_expired_code_binds_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    code = code_for(uow, issuer)

    assert refusal(lambda: bind(uow, issuer, wechat_user, code, now=T0 + timedelta(minutes=5))) == "SMS_CODE_EXPIRED"
    assert uow.users.get(wechat_user).phone is None


def test_a_used_code_cannot_bind_again(uow: FakeUserUnitOfWork, issuer: TokenIssuer, wechat_user: int) -> None:
    code = code_for(uow, issuer)
    other = wechat_first(uow, "o-other")
    bind(uow, issuer, wechat_user, code)

    assert refusal(lambda: bind(uow, issuer, other, code)) == "SMS_CODE_EXPIRED"
    assert uow.users.get(other).phone is None


def test_a_stolen_access_token_alone_binds_no_phone(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                     wechat_user: int) -> None:
    """The thief has the account's token and a phone of their own, not the account's WeChat: without a wx.login code
    of it nothing is bound (else they would log in with their phone for good), and their SMS code is not spent."""
    code = code_for(uow, issuer)

    with pytest.raises(InvalidInput) as missing:
        service.bind_phone(uow, issuer, FakeWechat(), user_id=wechat_user, phone=PHONE, code=code, wechat_code=None,
                           now=T0 + timedelta(seconds=30))
    with pytest.raises(Forbidden) as mismatched:
        bind(uow, issuer, wechat_user, code, openid="o-thief")

    assert (missing.value.code, missing.value.details, mismatched.value.code) == (
        "WECHAT_CODE_REQUIRED", {"wechat_code": "required"}, "WECHAT_MISMATCH")
    assert (uow.users.get(wechat_user).phone, uow.phone_changes.records, uow.commits) == (None, [], 1)  # the sending
    assert (uow.sms_codes.latest(PHONE, "bind").attempts, uow.sms_codes.latest(PHONE, "bind").consumed_at) == (0, None)


def test_a_wx_login_code_that_wechat_refuses_binds_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                            wechat_user: int) -> None:
    code = code_for(uow, issuer)

    with pytest.raises(InvalidInput) as refused:
        service.bind_phone(uow, issuer, FakeWechat(), user_id=wechat_user, phone=PHONE, code=code,
                           wechat_code="never-issued", now=T0 + timedelta(seconds=30))

    assert (refused.value.code, uow.users.get(wechat_user).phone, uow.sms_codes.latest(PHONE, "bind").attempts) == (
        "WECHAT_CODE_INVALID", None, 0)


def test_five_wrong_tries_lock_the_code_even_for_the_right_one(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                               wechat_user: int) -> None:
    code = code_for(uow, issuer)
    for _ in range(5):
        refusal(lambda: bind(uow, issuer, wechat_user, wrong(code)))

    assert refusal(lambda: bind(uow, issuer, wechat_user, code)) == "SMS_CODE_LOCKED"
    assert uow.users.get(wechat_user).phone is None


@pytest.mark.parametrize(("phone", "code", "error"), [("1391234567", "123456", "PHONE_INVALID"),
                                                      ("12912345678", "123456", "PHONE_INVALID"),
                                                      (PHONE, "12345", "SMS_CODE_INVALID"),
                                                      (PHONE, "12345a", "SMS_CODE_INVALID")])
def test_malformed_input_is_refused_before_anything_is_looked_at(uow: FakeUserUnitOfWork, issuer: TokenIssuer,
                                                                 wechat_user: int, phone: str, code: str,
                                                                 error: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        bind(uow, issuer, wechat_user, code, phone=phone)

    assert (raised.value.code, uow.commits) == (error, 0)


def test_once_a_phone_is_bound_the_wechat_can_be_unbound(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    wechat = FakeWechat()
    user_id = service.login_with_wechat(uow, wechat, issuer, code=wechat.code_for("o-first"), now=T0).user.id
    assert user_id is not None
    bind(uow, issuer, user_id, code_for(uow, issuer))
    code = code_for(uow, issuer, "unbind")

    service.unbind_wechat(uow, issuer, user_id=user_id, sms_code=code, keep_session="", now=T0 + timedelta(minutes=1))

    assert uow.wechat_accounts.accounts == []
