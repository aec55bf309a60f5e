"""WeChat login, binding and unbinding on the in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.user_events_pb2 import UserRegistered

from services.common import sessions
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.events import timestamp
from services.common.sessions import SessionsEnded
from services.user import service
from services.user.config import WechatSettings
from services.user.domain import RefreshTokenRefused, User
from services.user.tokens import TokenIssuer, token_hash
from services.user.wechat import WechatAuth
from tests.fakes import FakeUserUnitOfWork, FakeWechat, SilentSms

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PHONE = "13912345678"


@pytest.fixture
def wechat() -> FakeWechat:
    return FakeWechat()


def login(uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer, openid: str = "o-alice"):  # type: ignore[no-untyped-def]
    return service.login_with_wechat(uow, wechat, issuer, code=wechat.code_for(openid), now=T0)


def test_first_wechat_login_registers_a_shopper_without_phone_and_publishes_one_event(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    result = login(uow, wechat, issuer)

    assert (result.is_new_user, result.user.phone, result.user.nickname, result.roles) == (True, None, "微信用户lice",
                                                                                          frozenset())
    assert [(e.event_type, e.aggregate_id, e.payload) for e in uow.published] == [
        ("user-registered", "1", UserRegistered(user_id=1, channel="wechat", registered_at=timestamp(T0)))]


def test_the_same_wechat_logs_into_the_same_account_without_registering_again(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    first = login(uow, wechat, issuer)

    again = login(uow, wechat, issuer)

    assert (again.is_new_user, again.user.id, len(uow.users.users), len(uow.published)) == (
        False, first.user.id, 1, 1)


def test_a_refused_code_changes_nothing(uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    with pytest.raises(InvalidInput):
        service.login_with_wechat(uow, wechat, issuer, code="never-issued", now=T0)

    assert (uow.users.users, uow.wechat_accounts.accounts, uow.published, uow.commits) == ([], [], [], 0)


def phone_user(uow: FakeUserUnitOfWork) -> int:
    user = User.register(PHONE, T0)
    uow.users.add(user)
    assert user.id is not None
    return user.id


def bind_code(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0) -> str:
    """A "bind" SMS code sent to the phone account's phone."""
    return service.send_sms_code(uow, SilentSms(), issuer, phone=PHONE, purpose="bind", now=now).dev_code


def bind(uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer, user_id: int, openid: str,
         sms_code: str | None = None, now: datetime = T0) -> None:
    service.bind_wechat(uow, wechat, issuer, user_id=user_id, code=wechat.code_for(openid),
                        sms_code=sms_code or bind_code(uow, issuer, now), now=now)


def test_a_phone_account_binds_a_wechat_and_then_logs_in_with_it(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)

    bind(uow, wechat, issuer, user_id, "o-bob")
    result = login(uow, wechat, issuer, "o-bob")

    assert (result.is_new_user, result.user.id, len(uow.users.users)) == (False, user_id, 1)


def test_binding_the_same_wechat_twice_changes_nothing_and_needs_no_new_code(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)
    spent = bind_code(uow, issuer)
    bind(uow, wechat, issuer, user_id, "o-bob", spent)

    bind(uow, wechat, issuer, user_id, "o-bob", spent)  # a retry after a lost answer

    assert [(a.user_id, a.openid) for a in uow.wechat_accounts.accounts] == [(user_id, "o-bob")]


def test_a_stolen_access_token_alone_binds_no_wechat(uow: FakeUserUnitOfWork, wechat: FakeWechat,
                                                      issuer: TokenIssuer) -> None:
    """The thief has the token and their own WeChat, not the account's phone: a wrong or missing SMS code binds
    nothing (else they would log in with their WeChat for good)."""
    user_id = phone_user(uow)
    code = bind_code(uow, issuer)

    for guess in (f"{(int(code) + 1) % 10**6:06d}", "", "12345"):
        with pytest.raises(InvalidInput) as refused:
            bind(uow, wechat, issuer, user_id, "o-thief", guess or "nothing")
        assert refused.value.code == "SMS_CODE_INVALID"
        assert guess == f"{(int(code) + 1) % 10**6:06d}" or refused.value.details == {"sms_code": "invalid"}

    assert (uow.wechat_accounts.accounts, uow.sms_codes.latest(PHONE, "bind").attempts) == ([], 1)


def test_a_code_sent_to_another_phone_binds_nothing(uow: FakeUserUnitOfWork, wechat: FakeWechat,
                                                     issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)
    theirs = service.send_sms_code(uow, SilentSms(), issuer, phone="13800000009", purpose="bind", now=T0).dev_code

    with pytest.raises(InvalidInput) as refused:
        bind(uow, wechat, issuer, user_id, "o-thief", theirs)

    assert (refused.value.code, uow.wechat_accounts.accounts) == ("SMS_CODE_INVALID", [])


def test_a_wechat_bound_to_another_account_is_a_conflict(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    login(uow, wechat, issuer, "o-alice")  # user 1, by WeChat
    user_id = phone_user(uow)

    with pytest.raises(Conflict) as refused:
        bind(uow, wechat, issuer, user_id, "o-alice")

    assert (refused.value.code, [a.user_id for a in uow.wechat_accounts.accounts]) == ("WECHAT_BOUND_ELSEWHERE", [1])


def test_an_account_with_a_wechat_must_unbind_it_before_binding_another(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)
    bind(uow, wechat, issuer, user_id, "o-bob")
    code = bind_code(uow, issuer, T0 + timedelta(minutes=1))

    with pytest.raises(Conflict) as refused:
        bind(uow, wechat, issuer, user_id, "o-carol", code, T0 + timedelta(minutes=1))

    assert (refused.value.code, [a.openid for a in uow.wechat_accounts.accounts]) == ("WECHAT_ALREADY_BOUND", ["o-bob"])
    assert uow.sms_codes.latest(PHONE, "bind").consumed_at == T0 + timedelta(minutes=1)  # a conflict spends it


def unbind_code(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0) -> str:
    """An "unbind" SMS code sent to the phone account's phone."""
    return service.send_sms_code(uow, SilentSms(), issuer, phone=PHONE, purpose="unbind", now=now).dev_code


def test_a_phone_account_unbinds_its_wechat_with_an_unbind_code_sent_to_its_phone(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)
    bind(uow, wechat, issuer, user_id, "o-bob")
    code = unbind_code(uow, issuer, T0 + timedelta(seconds=10))

    service.unbind_wechat(uow, issuer, user_id=user_id, sms_code=code, keep_session="", now=T0 + timedelta(seconds=20))

    assert (uow.wechat_accounts.accounts, uow.sms_codes.latest(PHONE, "unbind").consumed_at) == (
        [], T0 + timedelta(seconds=20))


def test_unbinding_the_wechat_ends_the_sessions_started_with_it_and_keeps_the_callers(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    """Someone else may control the WeChat: the sessions it started end (refresh tokens revoked, their access tokens
    told to the gateway), and the owner's own session, which proved the phone, keeps working."""
    user_id = phone_user(uow)
    owner = service.login_with_sms(uow, issuer, phone=PHONE, now=T0, code=service.send_sms_code(
        uow, SilentSms(), issuer, phone=PHONE, purpose="login", now=T0).dev_code)
    bind(uow, wechat, issuer, user_id, "o-bob", now=T0 + timedelta(minutes=1))
    by_wechat = login(uow, wechat, issuer, "o-bob")
    code = unbind_code(uow, issuer, T0 + timedelta(minutes=2))
    unbound_at = T0 + timedelta(minutes=3)

    with sessions.collecting() as told:
        ended = service.unbind_wechat(uow, issuer, user_id=user_id, sms_code=code,
                                      keep_session=session_of(uow, owner.refresh_token), now=unbound_at)

    assert (ended, told) == (1, [SessionsEnded(user_id=user_id, session_id=session_of(uow, by_wechat.refresh_token),
                                               until=(unbound_at + issuer.access_ttl).timestamp())])
    with pytest.raises(RefreshTokenRefused):
        service.refresh_session(uow, issuer, refresh_token=by_wechat.refresh_token, now=unbound_at)
    assert service.refresh_session(uow, issuer, refresh_token=owner.refresh_token, now=unbound_at).user.id == user_id


def session_of(uow: FakeUserUnitOfWork, refresh_token: str) -> str:
    """The session (refresh-token family) of a refresh token."""
    return next(t.family_id for t in uow.refresh_tokens.tokens if t.token_hash == token_hash(refresh_token))


@pytest.mark.parametrize("purpose", ["login", "reset", "bind", "signup"])
def test_a_stolen_access_token_alone_unbinds_no_wechat(uow: FakeUserUnitOfWork, wechat: FakeWechat,
                                                        issuer: TokenIssuer, purpose: str) -> None:
    """The thief has the token, not the account's phone: without its "unbind" code the owner's WeChat stays bound
    (else the owner's next WeChat login would register a new, empty account). A code sent for anything else, such as
    a "bind" code the owner used moments ago, does not do either."""
    user_id = phone_user(uow)
    bind(uow, wechat, issuer, user_id, "o-bob")
    code = unbind_code(uow, issuer, T0 + timedelta(seconds=10))
    other = service.send_sms_code(uow, SilentSms(), issuer, phone=PHONE, purpose=purpose,
                                  now=T0 + timedelta(minutes=2)).dev_code
    guesses = [f"{(int(code) + 1) % 10**6:06d}", "12345", ""] + ([other] if other != code else [])

    for guess in guesses:
        with pytest.raises(InvalidInput) as refused:
            service.unbind_wechat(uow, issuer, user_id=user_id, sms_code=guess, keep_session="", now=T0 + timedelta(minutes=2))
        assert refused.value.code == "SMS_CODE_INVALID"

    assert ([(a.user_id, a.openid) for a in uow.wechat_accounts.accounts],
            uow.sms_codes.latest(PHONE, "unbind").attempts) == ([(user_id, "o-bob")], len(guesses) - 2)


def test_the_last_login_method_cannot_be_removed_and_no_code_is_asked_for(
        uow: FakeUserUnitOfWork, wechat: FakeWechat, issuer: TokenIssuer) -> None:
    user_id = login(uow, wechat, issuer).user.id
    assert user_id is not None

    with pytest.raises(DomainError) as refused:
        service.unbind_wechat(uow, issuer, user_id=user_id, sms_code="123456", keep_session="", now=T0)

    assert (refused.value.code, len(uow.wechat_accounts.accounts)) == ("LAST_LOGIN_METHOD", 1)


def test_unbinding_without_a_wechat_is_not_found_and_spends_no_code(uow: FakeUserUnitOfWork,
                                                                     issuer: TokenIssuer) -> None:
    user_id = phone_user(uow)
    code = unbind_code(uow, issuer)

    with pytest.raises(NotFound) as refused:
        service.unbind_wechat(uow, issuer, user_id=user_id, sms_code=code, keep_session="", now=T0)

    assert (refused.value.code, uow.sms_codes.latest(PHONE, "unbind").attempts) == ("WECHAT_NOT_BOUND", 0)


class WechatApi:
    """A fake requests.Session for WechatAuth: jscode2session answers `answer`."""

    def __init__(self, answer: dict[str, object]) -> None:
        self.answer = answer

    def get(self, url: str, *, params: dict[str, str], timeout: float) -> object:
        return type("Answer", (), {"status_code": 200, "json": lambda _self: self.answer})()


@pytest.mark.parametrize("answer", [{"openid": "", "session_key": "c2Vzc2lvbi1rZXk="},
                                    {"session_key": "c2Vzc2lvbi1rZXk="},
                                    {"errcode": 0, "openid": " ", "session_key": "c2Vzc2lvbi1rZXk="},
                                    {"openid": "o" * 65, "session_key": "c2Vzc2lvbi1rZXk="},
                                    {"openid": "o-alice", "session_key": ""}],
                         ids=["empty-openid", "no-openid", "blank-openid", "too-long-openid", "no-session-key"])
def test_a_code2session_success_without_an_openid_is_unavailable_and_registers_nothing(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer, answer: dict[str, object]) -> None:
    wechat = WechatAuth(WechatSettings(api_base="https://api.weixin.qq.com", appid="wx0000000000000001",
                                       app_secret="secret", timeout_seconds=5),
                        session=WechatApi(answer))  # type: ignore[arg-type]

    with pytest.raises(DomainError) as refused:
        service.login_with_wechat(uow, wechat, issuer, code="wx-code-1", now=T0)

    assert (refused.value.code, refused.value.kind) == ("WECHAT_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert (uow.users.users, uow.wechat_accounts.accounts, uow.published, uow.commits) == ([], [], [], 0)


def test_a_code2session_answer_with_an_openid_logs_in(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    wechat = WechatAuth(WechatSettings(api_base="https://api.weixin.qq.com", appid="wx0000000000000001",
                                       app_secret="secret", timeout_seconds=5),
                        session=WechatApi({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "unionid": "",
                                           "session_key": "c2Vzc2lvbi1rZXk="}))  # type: ignore[arg-type]

    result = service.login_with_wechat(uow, wechat, issuer, code="wx-code-1", now=T0)

    assert (result.is_new_user, [(a.openid, a.unionid) for a in uow.wechat_accounts.accounts]) == (
        True, [("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", None)])
