"""The order service's WeChat Pay notify URLs: from MINIMALL_PUBLIC_URL, and never local in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.config import ConfigError, ServiceSettings
from services.order.config import OrderServiceSettings
from tests.fixtures.keys import JwtKeys


def pem(key: rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.fixture
def wechatpay(tmp_path: Path) -> dict[str, str]:
    """A complete WeChat Pay merchant configuration, its key files under tmp_path."""
    (tmp_path / "merchant.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))[0])
    (tmp_path / "platform.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))[1])
    return {"WECHATPAY_MCHID": "1900000001", "WECHATPAY_APPID": "wx0000000000000001", "WECHATPAY_APIV3_KEY": "k" * 32,
            "WECHATPAY_MERCHANT_SERIAL": "5157F09EFDC096DE15EBE81A47057A72",
            "WECHATPAY_MERCHANT_KEY_FILE": str(tmp_path / "merchant.pem"),
            "WECHATPAY_PLATFORM_CERTS": f"PUB_KEY_ID_01:{tmp_path / 'platform.pem'}"}


def prod(jwt_keys: JwtKeys) -> ServiceSettings:
    return ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "MINIMALL_ENV": "prod"})


def test_wechat_pay_notifies_under_the_public_origin(jwt_keys: JwtKeys, wechatpay: dict[str, str]) -> None:
    settings = OrderServiceSettings.from_env(prod(jwt_keys), {**wechatpay, "MINIMALL_PUBLIC_URL": "https://shop.example.com"})

    assert (settings.orders.notify_url, settings.orders.refund_notify_url) == (
        "https://shop.example.com/api/v1/payments/wechat/notify",
        "https://shop.example.com/api/v1/payments/wechat/refund-notify")


def test_prod_with_wechat_pay_and_no_public_url_refuses_to_start(jwt_keys: JwtKeys, wechatpay: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        OrderServiceSettings.from_env(prod(jwt_keys), wechatpay)

    assert str(refused.value) == (
        "ORDER_WECHATPAY_NOTIFY_URL (or MINIMALL_PUBLIC_URL, the shop's public https origin) must be a public https "
        "URL outside dev and test: the payment channel calls it back; got "
        "'https://localhost/api/v1/payments/wechat/notify'")


def test_prod_refuses_a_plain_http_refund_notify_url(jwt_keys: JwtKeys, wechatpay: dict[str, str]) -> None:
    environ = {**wechatpay, "MINIMALL_PUBLIC_URL": "https://shop.example.com",
               "ORDER_WECHATPAY_REFUND_NOTIFY_URL": "http://shop.example.com/api/v1/payments/wechat/refund-notify"}

    with pytest.raises(ConfigError, match="^ORDER_WECHATPAY_REFUND_NOTIFY_URL .* got 'http://shop.example.com/"):
        OrderServiceSettings.from_env(prod(jwt_keys), environ)


def test_prod_without_wechat_pay_needs_no_public_url(jwt_keys: JwtKeys) -> None:
    settings = OrderServiceSettings.from_env(prod(jwt_keys), {})

    assert (settings.wechatpay, settings.orders.notify_url) == (None, "https://localhost/api/v1/payments/wechat/notify")
