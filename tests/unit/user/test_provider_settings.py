"""Settings of the third-party adapters: what each provider needs, https outside dev, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ConfigError, ServiceSettings
from services.user.config import AliyunSmsSettings, RealNameSettings, UserSettings, WechatSettings
from services.user.sms import AliyunSms, ConsoleSms, make_sms_sender

ALIYUN_ENV = {"SMS_PROVIDER": "aliyun", "ALIYUN_SMS_ACCESS_KEY_ID": "LTAI-id", "ALIYUN_SMS_ACCESS_KEY_SECRET": "s3cret",
              "ALIYUN_SMS_SIGN_NAME": "MiniMall", "ALIYUN_SMS_TEMPLATE_CODE": "SMS_100"}


def base_settings(tmp_path: Path, environment: str) -> ServiceSettings:
    key = tmp_path / "public.pem"
    key.write_bytes(b"public")
    return ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": environment})


# Outside dev and test the identity settings are required too; these are the prod ones for a real provider.
IDENTITY_ENV = {"IDENTITY_PROVIDER": "faceid", "REALNAME_SECRET_ID": "AKID-id", "REALNAME_SECRET_KEY": "rn-secret",
                "IDENTITY_KEYS": "k1:" + "A" * 43 + "=", "IDENTITY_FINGERPRINT_KEY": "B" * 43 + "="}


def user_settings(tmp_path: Path, env: dict[str, str], environment: str = "prod") -> UserSettings:
    private = tmp_path / "private.pem"
    private.write_bytes(b"private")
    return UserSettings.from_env(base_settings(tmp_path, environment),
                                 {"JWT_PRIVATE_KEY_FILE": str(private), **IDENTITY_ENV, **env})


def test_aliyun_provider_reads_its_account_with_the_public_endpoint_by_default(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, ALIYUN_ENV)

    assert settings.aliyun_sms == AliyunSmsSettings(
        endpoint="https://dysmsapi.aliyuncs.com/", access_key_id="LTAI-id", access_key_secret="s3cret",
        sign_name="MiniMall", template_code="SMS_100", region_id="cn-hangzhou", timeout_seconds=5.0)


@pytest.mark.parametrize("missing", ["ALIYUN_SMS_ACCESS_KEY_ID", "ALIYUN_SMS_ACCESS_KEY_SECRET",
                                     "ALIYUN_SMS_SIGN_NAME", "ALIYUN_SMS_TEMPLATE_CODE"])
def test_aliyun_provider_refuses_to_start_without_each_account_setting(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in ALIYUN_ENV.items() if k != missing}

    with pytest.raises(ConfigError, match=f"^{missing} must be set$"):
        user_settings(tmp_path, env)


def test_a_plain_http_provider_url_is_refused_outside_dev_and_test(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^ALIYUN_SMS_ENDPOINT must be an https URL"):
        user_settings(tmp_path, {**ALIYUN_ENV, "ALIYUN_SMS_ENDPOINT": "http://127.0.0.1:8099/dysmsapi/"})


def test_a_plain_http_provider_url_is_accepted_in_dev_for_the_simulator(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, {**ALIYUN_ENV, "ALIYUN_SMS_ENDPOINT": "http://127.0.0.1:8099/dysmsapi/"},
                             environment="dev")

    assert settings.aliyun_sms is not None and settings.aliyun_sms.endpoint == "http://127.0.0.1:8099/dysmsapi/"


def test_console_provider_has_no_aliyun_settings_and_no_optional_providers(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, {"SMS_PROVIDER": "console"}, environment="dev")
    bare = UserSettings.from_env(base_settings(tmp_path, "dev"), {"JWT_PRIVATE_KEY_FILE": str(tmp_path / "private.pem"),
                                                                  "SMS_PROVIDER": "console"})

    assert (settings.aliyun_sms, settings.wechat, bare.realname, bare.identity_provider) == (
        None, None, None, "format-only")


def test_wechat_login_is_configured_by_appid_and_secret(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, {**ALIYUN_ENV, "WECHAT_APPID": "wx123", "WECHAT_APP_SECRET": "app-secret",
                                        "THIRD_PARTY_TIMEOUT_SECONDS": "2.5"})

    assert settings.wechat == WechatSettings(api_base="https://api.weixin.qq.com", appid="wx123",
                                             app_secret="app-secret", timeout_seconds=2.5)


def test_a_wechat_appid_without_its_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^WECHAT_APP_SECRET must be set$"):
        user_settings(tmp_path, {**ALIYUN_ENV, "WECHAT_APPID": "wx123"})


def test_real_name_checks_are_configured_by_secret_id_and_key(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, {**ALIYUN_ENV, "REALNAME_SECRET_ID": "AKID1", "REALNAME_SECRET_KEY": "k"})

    assert settings.realname == RealNameSettings(endpoint="https://faceid.tencentcloudapi.com/", secret_id="AKID1",
                                                 secret_key="k", timeout_seconds=5.0)


def test_provider_secrets_never_appear_in_the_settings_repr(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, {**ALIYUN_ENV, "WECHAT_APPID": "wx123", "WECHAT_APP_SECRET": "app-secret",
                                        "REALNAME_SECRET_ID": "AKID1", "REALNAME_SECRET_KEY": "tc-secret"})

    text = repr(settings)

    assert ("s3cret" in text, "app-secret" in text, "tc-secret" in text) == (False, False, False)


def test_make_sms_sender_builds_the_aliyun_sender_from_its_settings(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, ALIYUN_ENV)

    sender = make_sms_sender("aliyun", settings.aliyun_sms)

    assert isinstance(sender, AliyunSms) and sender.reveals_code is False


def test_make_sms_sender_keeps_the_console_provider() -> None:
    assert isinstance(make_sms_sender("console"), ConsoleSms)


def test_make_sms_sender_refuses_aliyun_without_settings() -> None:
    with pytest.raises(ValueError, match="needs its settings"):
        make_sms_sender("aliyun")
