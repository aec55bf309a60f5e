"""Where payment channels call back: MINIMALL_PUBLIC_URL or a service's own variable, public https outside dev/test."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, Env, callback_url, public_callback_url

NOTIFY = "/api/v1/payments/wechat/notify"


@pytest.mark.parametrize(("environ", "expected"), [
    ({"PAY_NOTIFY_URL": "https://pay.example.com/n", "MINIMALL_PUBLIC_URL": "https://shop.example.com"},
     "https://pay.example.com/n"),
    ({"MINIMALL_PUBLIC_URL": "https://shop.example.com/"}, "https://shop.example.com/api/v1/payments/wechat/notify"),
    ({}, "https://localhost/api/v1/payments/wechat/notify"),
])
def test_a_callback_url_is_its_own_variable_else_under_the_public_origin(environ: dict[str, str],
                                                                        expected: str) -> None:
    assert callback_url(Env(environ), "PAY_NOTIFY_URL", NOTIFY) == expected


@pytest.mark.parametrize("url", ["https://shop.example.com/api/v1/payments/wechat/notify", "https://8.8.8.8/n"])
def test_a_public_https_callback_url_is_accepted_in_prod(url: str) -> None:
    assert public_callback_url("PAY_NOTIFY_URL", url, "prod") == url


@pytest.mark.parametrize("url", ["https://localhost/api/v1/payments/wechat/notify", "https://shop.localhost/n",
                                 "http://shop.example.com/n", "https://127.0.0.1/n", "https://10.1.2.3/n",
                                 "https://[::1]/n", "shop.example.com/n"])
@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_a_local_or_plain_http_callback_url_is_refused_outside_dev_and_test(url: str, environment: str) -> None:
    with pytest.raises(ConfigError) as refused:
        public_callback_url("PAY_NOTIFY_URL", url, environment)

    assert str(refused.value) == ("PAY_NOTIFY_URL (or MINIMALL_PUBLIC_URL, the shop's public https origin) must be a "
                                  f"public https URL outside dev and test: the payment channel calls it back; got {url!r}")


@pytest.mark.parametrize("environment", ["dev", "test"])
def test_dev_and_test_call_back_wherever_they_are_told(environment: str) -> None:
    assert public_callback_url("PAY_NOTIFY_URL", "http://127.0.0.1:8080/n", environment) == "http://127.0.0.1:8080/n"
