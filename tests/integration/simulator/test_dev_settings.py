"""The environment devrun gives the user service (dev_env) builds adapters that work against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ServiceSettings
from services.user.config import UserSettings
from services.user.realname import RealNameChecker
from services.user.sms import make_sms_sender
from services.user.wechat import WechatAuth
from tests.fixtures.simulator import RunningSimulator


@pytest.fixture
def settings(simulator: RunningSimulator, tmp_path: Path) -> UserSettings:
    (tmp_path / "public.pem").write_bytes(b"public")
    (tmp_path / "private.pem").write_bytes(b"private")
    base = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
                                             "MINIMALL_ENV": "dev"})
    return UserSettings.from_env(base, {**simulator.env(), "JWT_PRIVATE_KEY_FILE": str(tmp_path / "private.pem")})


def test_wechat_login_works_with_the_dev_settings(simulator: RunningSimulator, settings: UserSettings) -> None:
    assert settings.wechat is not None

    session = WechatAuth(settings.wechat).code2session(simulator.client.wechat_login_code("o-dev-settings"))

    assert session.openid == "o-dev-settings"


def test_sms_provider_aliyun_delivers_with_the_dev_settings(simulator: RunningSimulator,
                                                            settings: UserSettings) -> None:
    make_sms_sender(settings.sms_provider, settings.aliyun_sms).send_code("13600000042", "864209", "login")

    assert simulator.client.last_sms_code("13600000042") == "864209"


def test_real_name_checks_work_with_the_dev_settings(settings: UserSettings) -> None:
    assert settings.realname is not None

    assert RealNameChecker(settings.realname).verify("张三", "11010519491231002X") is None
