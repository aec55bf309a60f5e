"""Phone and password rules, user accounts, and the user service's settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common import formats
from services.common.config import ConfigError, Env, ServiceSettings
from services.common.errors import InvalidInput
from services.user.config import UserSettings, read_identity_keys, read_identity_provider
from services.user.domain import User, validate_password, validate_phone
from services.user.identity import IdentityKeys

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("phone", ["13800138000", "19912345678", "14700000000", "15012345678"])
def test_mainland_mobile_number_is_valid(phone: str) -> None:
    assert validate_phone(phone) == phone


@pytest.mark.parametrize("phone", [
    "12800138000",       # second digit 2
    "10800138000",       # second digit 0
    "23800138000",       # does not start with 1
    "1380013800",        # 10 digits
    "138001380001",      # 12 digits
    "+8613800138000",    # country code
    "138-0013-8000",     # separators
    "1380013800a",
    " 13800138000",
    "13800138000\n",
    "",
    None,
])
def test_anything_else_is_an_invalid_phone(phone: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_phone(phone)

    assert (raised.value.code, raised.value.details) == ("PHONE_INVALID", {"phone": "invalid"})


@pytest.mark.parametrize("phone", ["138００１３８０００", "138٠٠١٣٨٠٠٠"], ids=["full-width", "arabic-indic"])
def test_phone_with_non_ascii_digits_is_invalid(phone: str) -> None:
    with pytest.raises(InvalidInput):
        validate_phone(phone)


@pytest.mark.parametrize("password", ["abcd1234", "Passw0rd!", "密码密码1234", "a1" * 64])
def test_password_with_letters_and_digits_of_8_to_128_characters_is_accepted(password: str) -> None:
    assert validate_password(password) == password


@pytest.mark.parametrize("password", [
    "abc1234",          # 7 characters
    "a1" * 64 + "x",    # 129 characters
    "12345678",         # digits only
    "password",         # letters only
    "密码密码密码密码",     # letters only, in Chinese
    "",
])
def test_weak_password_is_refused(password: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_password(password)

    assert (raised.value.code, raised.value.message, raised.value.details) == (
        "PASSWORD_TOO_WEAK", f"password must be {formats.PASSWORD_RULE}", {"password": "too weak"})


@pytest.mark.parametrize("password", ["abcd\t1234", "abcd1234\n", "\x00abcd1234", "abcd\x7f1234"])
def test_a_password_with_a_control_character_is_refused_as_no_login_could_send_it(password: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_password(password)

    assert raised.value.code == "PASSWORD_TOO_WEAK"


@pytest.mark.parametrize("password", ["        ", "!!!!!!!!", "password!", "1234567!"])
def test_password_without_both_letters_and_digits_is_refused(password: str) -> None:
    with pytest.raises(InvalidInput):
        validate_password(password)


# User

def test_registered_shopper_gets_a_nickname_that_hides_the_number() -> None:
    user = User.register("13800138000", NOW)

    assert (user.phone, user.nickname, user.created_at, user.role_set, user.id) == (
        "13800138000", "用户8000", NOW, frozenset(), None)


def test_registering_an_invalid_phone_is_refused() -> None:
    with pytest.raises(InvalidInput):
        User.register("12345", NOW)


def test_roles_added_one_by_one_are_kept_sorted_and_unique() -> None:
    user = User.register("13800138000", NOW)

    for role in ("operator", "admin", "operator"):
        user.set_roles(user.role_set | {role})  # as create_staff adds one

    assert (user.roles, user.role_set) == ("admin,operator", frozenset({"admin", "operator"}))


# UserSettings

@pytest.fixture
def base(tmp_path: Path) -> ServiceSettings:
    key = tmp_path / "public.pem"
    key.write_bytes(b"public")
    return ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "dev"})


@pytest.fixture
def private_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "private.pem"
    path.write_bytes(b"private")
    return path


def test_sms_provider_must_be_set_explicitly(base: ServiceSettings, private_key_file: Path) -> None:
    with pytest.raises(ConfigError, match="^SMS_PROVIDER must be set$"):
        UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file)})


def test_unknown_sms_provider_is_refused(base: ServiceSettings, private_key_file: Path) -> None:
    with pytest.raises(ConfigError, match="^SMS_PROVIDER must be one of console, aliyun, got 'twilio'$"):
        UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "twilio"})


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_the_console_sms_provider_is_refused_outside_dev_and_test(tmp_path: Path, private_key_file: Path,
                                                                   environment: str) -> None:
    key = tmp_path / "public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": environment})

    with pytest.raises(ConfigError, match="runs only with MINIMALL_ENV=dev or test"):
        UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "console"})


def test_user_settings_default_token_lifetimes(base: ServiceSettings, private_key_file: Path) -> None:
    settings = UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "console"})

    assert settings == UserSettings(base=base, jwt_private_key_pem=b"private", sms_provider="console",
                                    access_token_ttl_seconds=900, refresh_token_ttl_seconds=2_592_000,
                                    staff_session_max_hours=12, refresh_reuse_grace_seconds=30,
                                    identity_provider="format-only",
                                    identity_keys=IdentityKeys.derived_for_dev(b"private"))


def test_staff_session_limit_is_read_in_hours(base: ServiceSettings, private_key_file: Path) -> None:
    settings = UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "console",
                                            "STAFF_SESSION_MAX_HOURS": "8"})

    assert settings.staff_session_max_hours == 8


@pytest.mark.parametrize("hours", ["0", "721", "eight"])
def test_a_staff_session_limit_outside_an_hour_to_thirty_days_is_refused(base: ServiceSettings, private_key_file: Path,
                                                                         hours: str) -> None:
    with pytest.raises(ConfigError, match="STAFF_SESSION_MAX_HOURS"):
        UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "console",
                                     "STAFF_SESSION_MAX_HOURS": hours})


@pytest.mark.parametrize("seconds", ["-1", "301", "thirty"])
def test_a_refresh_reuse_grace_outside_none_to_five_minutes_is_refused(base: ServiceSettings, private_key_file: Path,
                                                                       seconds: str) -> None:
    with pytest.raises(ConfigError, match="REFRESH_TOKEN_REUSE_GRACE_SECONDS"):
        UserSettings.from_env(base, {"JWT_PRIVATE_KEY_FILE": str(private_key_file), "SMS_PROVIDER": "console",
                                     "REFRESH_TOKEN_REUSE_GRACE_SECONDS": seconds})


@pytest.mark.parametrize("environment", ["dev", "test"])
def test_dev_and_test_default_to_the_format_only_identity_provider(environment: str) -> None:
    assert read_identity_provider(Env({}), environment) == "format-only"


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_production_must_name_its_identity_provider(environment: str) -> None:
    with pytest.raises(ConfigError, match="^IDENTITY_PROVIDER must be set$"):
        read_identity_provider(Env({}), environment)


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_the_format_only_identity_provider_is_refused_outside_dev_and_test(environment: str) -> None:
    with pytest.raises(ConfigError, match="verifies anyone; it runs only with MINIMALL_ENV=dev or test"):
        read_identity_provider(Env({"IDENTITY_PROVIDER": "format-only"}), environment)


def test_an_unknown_identity_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match="^IDENTITY_PROVIDER must be one of format-only, faceid, got 'acme'$"):
        read_identity_provider(Env({"IDENTITY_PROVIDER": "acme"}), "dev")


def test_production_must_set_identity_keys() -> None:
    with pytest.raises(ConfigError, match="^IDENTITY_KEYS must be set"):
        read_identity_keys(Env({}), "prod", b"private")


def test_identity_keys_from_the_environment_need_the_fingerprint_key_too() -> None:
    key = "AQ" * 21 + "A="  # 32 bytes of 0x01... in base64
    with pytest.raises(ConfigError, match="^IDENTITY_FINGERPRINT_KEY must be set$"):
        read_identity_keys(Env({"IDENTITY_KEYS": f"k1:{key}"}), "prod", b"private")


def test_identity_keys_from_the_environment_list_the_active_key_first() -> None:
    one, two = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2))

    keys = read_identity_keys(Env({"IDENTITY_KEYS": f"new:{two}, old:{one}", "IDENTITY_FINGERPRINT_KEY": one}),
                              "prod", b"private")

    assert (keys.active_key_id, dict(keys.keys), keys.fingerprint_key) == (
        "new", {"new": bytes([2]) * 32, "old": bytes([1]) * 32}, bytes([1]) * 32)
