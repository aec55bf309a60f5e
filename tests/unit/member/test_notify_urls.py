"""The member service's recharge notify base: from MINIMALL_PUBLIC_URL, and never local in production."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, ServiceSettings
from services.member.config import MemberServiceSettings
from tests.fixtures.keys import JwtKeys

BANK_CARD = {"BANKCARD_MERCHANT_ID": "M100", "BANKCARD_SECRET": "s" * 32,
             "BANKCARD_CASHIER_URL": "https://cashier.example.com/pay"}


def prod(jwt_keys: JwtKeys) -> ServiceSettings:
    return ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "MINIMALL_ENV": "prod"})


def test_every_channel_notifies_under_the_public_origin(jwt_keys: JwtKeys) -> None:
    settings = MemberServiceSettings.from_env(prod(jwt_keys), {**BANK_CARD, "MINIMALL_PUBLIC_URL": "https://shop.example.com"})

    assert settings.notify_urls == {"wechat": "https://shop.example.com/api/v1/payments/wechat/recharge-notify",
                                    "alipay": "https://shop.example.com/api/v1/payments/alipay/notify",
                                    "bank_card": "https://shop.example.com/api/v1/payments/bankcard/notify"}


@pytest.mark.parametrize(("environ", "url"), [({}, "https://localhost/api/v1"),
                                              ({"MEMBER_NOTIFY_BASE_URL": "http://gateway:8080/api/v1"},
                                               "http://gateway:8080/api/v1")])
def test_prod_with_a_channel_and_no_public_notify_base_refuses_to_start(jwt_keys: JwtKeys, environ: dict[str, str],
                                                                        url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        MemberServiceSettings.from_env(prod(jwt_keys), {**BANK_CARD, **environ})

    assert str(refused.value) == (
        "MEMBER_NOTIFY_BASE_URL (or MINIMALL_PUBLIC_URL, the shop's public https origin) must be a public https URL "
        f"outside dev and test: the payment channel calls it back; got {url!r}")


def test_prod_without_any_channel_needs_no_public_url(jwt_keys: JwtKeys) -> None:
    settings = MemberServiceSettings.from_env(prod(jwt_keys), {})

    assert (settings.wechatpay, settings.alipay, settings.bankcard, settings.notify_urls["wechat"]) == (
        None, None, None, "https://localhost/api/v1/payments/wechat/recharge-notify")
