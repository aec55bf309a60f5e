"""The simulator's own surface: settings from the environment, misused hooks, oversized bodies, reset."""

from __future__ import annotations

import secrets

import pytest
import requests

from services.user.sms import AliyunSms
from tests.fixtures.simulator import RunningSimulator
from tools.simulator import SimulatorConfig


def test_the_simulator_reads_the_adapters_credentials_and_its_limits_from_the_environment() -> None:
    config = SimulatorConfig.from_env({"WECHAT_APPID": "wx-dev", "WECHAT_APP_SECRET": "s1",
                                       "ALIYUN_SMS_ACCESS_KEY_ID": "LTAI-dev", "ALIYUN_SMS_ACCESS_KEY_SECRET": "s2",
                                       "REALNAME_SECRET_ID": "AKID-dev", "REALNAME_SECRET_KEY": "s3",
                                       "SIM_SMS_PER_MINUTE": "3",
                                       "SIM_REALNAME_IDENTITIES": "张三:11010519491231002X, 李四:110101200001010010"})

    assert config == SimulatorConfig(wechat_appid="wx-dev", wechat_app_secret="s1", aliyun_access_key_id="LTAI-dev",
                                     aliyun_access_key_secret="s2", tencent_secret_id="AKID-dev",
                                     tencent_secret_key="s3", sms_per_minute=3,
                                     identities=(("张三", "11010519491231002X"), ("李四", "110101200001010010")))


def test_without_environment_the_simulator_uses_its_dev_defaults() -> None:
    assert SimulatorConfig.from_env({}) == SimulatorConfig()


def test_the_simulator_config_repr_hides_the_dev_secrets() -> None:
    assert "sim-wechat-app-secret" not in repr(SimulatorConfig())


@pytest.mark.parametrize(("path", "body"), [
    ("/sim/wechat/fail-next", {"errcode": 12345}),
    ("/sim/sms/fail-next", {"code": "isv.NOT_A_CODE"}),
    ("/sim/realname/fail-next", {"result": "0"}),
    ("/sim/realname/identities", {"id_number": "11010519491231002X"}),
    ("/sim/realname/identities", {"real_name": "张三", "id_number": "110105194912310021"}),
    ("/sim/clock", {"advance_seconds": -1}),
])
def test_a_misused_hook_answers_400_with_the_reason(simulator: RunningSimulator, path: str,
                                                    body: dict[str, object]) -> None:
    response = requests.post(f"{simulator.base_url}{path}", json=body, timeout=5)

    assert response.status_code == 400 and response.json()["error"]


def test_an_unknown_path_answers_404(simulator: RunningSimulator) -> None:
    assert requests.get(f"{simulator.base_url}/nowhere", timeout=5).status_code == 404


def test_a_body_over_64_kib_answers_413(simulator: RunningSimulator) -> None:
    response = requests.post(f"{simulator.base_url}/sim/wechat/login-code", data=b"x" * (64 * 1024 + 1), timeout=5)

    assert response.status_code == 413


def test_reset_forgets_the_delivered_messages_and_forced_failures(simulator: RunningSimulator) -> None:
    client = simulator.client
    code = client.wechat_login_code()
    client.wechat_fail_next(-1)
    client.reset()

    answer = requests.get(f"{simulator.base_url}/sns/jscode2session", timeout=5, params={
        "appid": simulator.config.wechat_appid, "secret": simulator.config.wechat_app_secret, "js_code": code,
        "grant_type": "authorization_code"}).json()

    assert answer["errcode"] == 40029  # the code is gone, and the forced -1 with it


def test_messages_without_a_phone_lists_every_recipient(simulator: RunningSimulator) -> None:
    phone = f"137{secrets.randbelow(10**8):08d}"
    AliyunSms(simulator.aliyun_sms_settings()).send_code(phone, "135790", "login")

    listed = requests.get(f"{simulator.base_url}/sim/sms/messages", timeout=5).json()["messages"]

    assert listed[0]["phone"] == phone
