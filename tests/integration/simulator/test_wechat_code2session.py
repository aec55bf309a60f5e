"""WechatAuth.code2session against the simulator: the protocol, single-use expiring codes, every errcode."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
import requests

from services.common.errors import DomainError, ErrorKind, Forbidden, InvalidInput, RateLimited
from services.user.config import WechatSettings
from services.user.wechat import WechatAuth
from tests.fixtures.simulator import RunningSimulator
from tools.simulator.wechat import CODE_TTL_SECONDS


def new_openid() -> str:
    return "o" + secrets.token_hex(13)


@pytest.fixture
def wechat(simulator: RunningSimulator) -> WechatAuth:
    return WechatAuth(simulator.wechat_settings())


def raw_code2session(simulator: RunningSimulator, **overrides: str) -> dict[str, Any]:
    settings = simulator.wechat_settings()
    query = {"appid": settings.appid, "secret": settings.app_secret, "js_code": "", "grant_type": "authorization_code",
             **overrides}
    response = requests.get(f"{simulator.base_url}/sns/jscode2session", params=query, timeout=5)
    assert response.status_code == 200
    return response.json()


def test_a_fresh_code_gives_the_openid_and_a_session_key(simulator: RunningSimulator, wechat: WechatAuth) -> None:
    openid = new_openid()

    session = wechat.code2session(simulator.client.wechat_login_code(openid))

    assert (session.openid, session.unionid, len(session.session_key)) == (openid, None, 24)


def test_the_unionid_comes_back_when_the_app_has_one(simulator: RunningSimulator, wechat: WechatAuth) -> None:
    openid = new_openid()

    session = wechat.code2session(simulator.client.wechat_login_code(openid, unionid="u-" + openid))

    assert (session.openid, session.unionid) == (openid, "u-" + openid)


def test_the_simulator_answers_a_good_code_in_wechats_shape(simulator: RunningSimulator) -> None:
    openid = new_openid()

    answer = raw_code2session(simulator, js_code=simulator.client.wechat_login_code(openid))

    assert sorted(answer) == ["openid", "session_key"] and answer["openid"] == openid


def test_a_login_code_without_openid_is_minted_for_a_random_user(simulator: RunningSimulator,
                                                                 wechat: WechatAuth) -> None:
    first = wechat.code2session(simulator.client.wechat_login_code())
    second = wechat.code2session(simulator.client.wechat_login_code())

    assert first.openid != second.openid and len(first.openid) == 28


def test_a_code_used_twice_is_refused_with_40163(simulator: RunningSimulator, wechat: WechatAuth) -> None:
    code = simulator.client.wechat_login_code(new_openid())
    wechat.code2session(code)

    assert raw_code2session(simulator, js_code=code)["errcode"] == 40163
    with pytest.raises(InvalidInput) as refused:
        wechat.code2session(code)
    assert (refused.value.code, refused.value.details) == ("WECHAT_CODE_INVALID", {"errcode": 40163})


def test_an_unknown_code_is_refused_with_40029(wechat: WechatAuth) -> None:
    with pytest.raises(InvalidInput) as refused:
        wechat.code2session("0" * 32)

    assert (refused.value.code, refused.value.details) == ("WECHAT_CODE_INVALID", {"errcode": 40029})


def test_a_code_older_than_five_minutes_is_refused_with_40029(simulator: RunningSimulator,
                                                               wechat: WechatAuth) -> None:
    code = simulator.client.wechat_login_code(new_openid())
    simulator.client.advance_clock(CODE_TTL_SECONDS + 1)

    with pytest.raises(InvalidInput) as refused:
        wechat.code2session(code)

    assert (refused.value.code, refused.value.details) == ("WECHAT_CODE_INVALID", {"errcode": 40029})


def test_a_code_that_cannot_be_a_wx_login_code_is_refused_without_calling_wechat(wechat: WechatAuth) -> None:
    with pytest.raises(InvalidInput) as refused:
        wechat.code2session("x" * 129)

    assert refused.value.code == "WECHAT_CODE_INVALID" and refused.value.details == {}


def test_the_101st_call_in_a_minute_for_one_user_hits_the_minute_quota(simulator: RunningSimulator,
                                                                       wechat: WechatAuth) -> None:
    openid = new_openid()
    for _ in range(simulator.config.wechat_minute_quota):
        wechat.code2session(simulator.client.wechat_login_code(openid))

    with pytest.raises(RateLimited) as refused:
        wechat.code2session(simulator.client.wechat_login_code(openid))

    assert (refused.value.code, refused.value.details) == ("WECHAT_RATE_LIMITED", {"errcode": 45011})


def test_the_minute_quota_frees_up_a_minute_later(simulator: RunningSimulator, wechat: WechatAuth) -> None:
    openid = new_openid()
    for _ in range(simulator.config.wechat_minute_quota):
        wechat.code2session(simulator.client.wechat_login_code(openid))
    simulator.client.advance_clock(60)

    assert wechat.code2session(simulator.client.wechat_login_code(openid)).openid == openid


@pytest.mark.parametrize(("errcode", "error", "code", "kind"), [
    (-1, DomainError, "WECHAT_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    (40029, InvalidInput, "WECHAT_CODE_INVALID", ErrorKind.INVALID),
    (40163, InvalidInput, "WECHAT_CODE_INVALID", ErrorKind.INVALID),
    (45011, RateLimited, "WECHAT_RATE_LIMITED", ErrorKind.RATE_LIMITED),
    (40226, Forbidden, "WECHAT_USER_BLOCKED", ErrorKind.FORBIDDEN),
])
def test_each_forced_errcode_becomes_its_domain_error(simulator: RunningSimulator, wechat: WechatAuth, errcode: int,
                                                      error: type[DomainError], code: str, kind: ErrorKind) -> None:
    login_code = simulator.client.wechat_login_code(new_openid())
    simulator.client.wechat_fail_next(errcode)

    with pytest.raises(error) as refused:
        wechat.code2session(login_code)

    assert (refused.value.code, refused.value.kind) == (code, kind)


def test_a_code_refused_by_a_busy_system_still_works_on_retry(simulator: RunningSimulator,
                                                             wechat: WechatAuth) -> None:
    openid = new_openid()
    code = simulator.client.wechat_login_code(openid)
    simulator.client.wechat_fail_next(-1)
    with pytest.raises(DomainError):
        wechat.code2session(code)

    assert wechat.code2session(code).openid == openid


def test_the_simulator_refuses_a_wrong_appid_with_40013_and_a_wrong_secret_with_40125(
        simulator: RunningSimulator) -> None:
    code = simulator.client.wechat_login_code(new_openid())

    assert raw_code2session(simulator, js_code=code, appid="wx-other")["errcode"] == 40013
    assert raw_code2session(simulator, js_code=code, secret="wrong")["errcode"] == 40125


@pytest.mark.parametrize("override", [{"appid": "wx-other"}, {"app_secret": "wrong"}])
def test_our_own_misconfiguration_is_unavailable_and_logged_without_the_secret(
        simulator: RunningSimulator, caplog: pytest.LogCaptureFixture, override: dict[str, str]) -> None:
    settings = simulator.wechat_settings()
    wechat = WechatAuth(WechatSettings(**{**vars(settings), **override}))

    with caplog.at_level(logging.ERROR, logger="services.user.wechat"), pytest.raises(DomainError) as refused:
        wechat.code2session(simulator.client.wechat_login_code(new_openid()))

    assert (refused.value.code, refused.value.kind) == ("WECHAT_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert "errcode 40" in caplog.text and settings.app_secret not in caplog.text


def test_an_unreachable_wechat_is_unavailable_and_the_secret_stays_out_of_logs_and_errors(
        simulator: RunningSimulator, caplog: pytest.LogCaptureFixture) -> None:
    settings = simulator.wechat_settings(timeout_seconds=1)
    wechat = WechatAuth(WechatSettings(**{**vars(settings), "api_base": "http://127.0.0.1:9"}))

    with caplog.at_level(logging.DEBUG), pytest.raises(DomainError) as refused:
        wechat.code2session("a" * 32)

    assert (refused.value.code, refused.value.kind) == ("WECHAT_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert settings.app_secret not in caplog.text
