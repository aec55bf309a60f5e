"""Bank-card channel adapter: signed cashier parameters, verified HMAC callbacks."""

from __future__ import annotations

import json

import pytest

from services.common.bankcard import (
    Bankcard,
    BankcardSettings,
    BankcardUnavailable,
    CardPayment,
    NotifyRejected,
    canonical,
    sign,
)
from services.common.config import ConfigError

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_795_000_000


@pytest.fixture
def client() -> Bankcard:
    return Bankcard(BankcardSettings(merchant_id="M1", secret=SECRET, cashier_url="https://pay.example/cashier"),
                    clock=lambda: NOW)


def callback(secret: bytes = SECRET, **changes: object) -> tuple[dict[str, str], bytes]:
    data = {"merchant_id": "M1", "out_trade_no": "R1", "trade_no": "BC1", "amount_fen": 5_000, "currency": "CNY",
            "status": "SUCCESS", "paid_at": "2026-12-06T02:30:00+00:00", "timestamp": NOW, "nonce": "n"}
    body = json.dumps({**data, **changes}).encode()
    return {"X-Bankcard-Signature": sign(secret, body)}, body


def test_cashier_parameters_are_signed_over_the_sorted_fields(client: Bankcard) -> None:
    params = client.cashier_params(out_trade_no="R1", amount_fen=5_000, notify_url="https://mall.example/n",
                                   expires_at=NOW + 1800)
    assert params["sign"] == sign(SECRET, canonical({k: v for k, v in params.items() if k != "cashier_url"}))
    assert (params["amount_fen"], params["timestamp"], params["cashier_url"]) == (
        "5000", str(NOW), "https://pay.example/cashier")


def test_a_signed_callback_verifies(client: Bankcard) -> None:
    payment = client.verify_notify(*callback())
    assert (payment.out_trade_no, payment.trade_no, payment.amount_fen, payment.paid) == ("R1", "BC1", 5_000, True)
    assert client.verify_notify(*callback(status="FAILED")).paid is False


@pytest.mark.parametrize(("headers_body", "reason"), [
    (callback(secret=b"x" * 32), "does not verify"),
    (({}, callback()[1]), "does not verify"),
    ((callback()[0], callback()[1].replace(b"5000", b"5001")), "does not verify"),
    (callback(timestamp=NOW - 301), "within 300 seconds"),
    (callback(merchant_id="M2"), "merchant_id"),
    (callback(currency="USD"), "currency 'USD'"),
    (callback(timestamp=NOW + 301), "within 300 seconds"),
    (callback(amount_fen="5000"), "integers"),
    (({"X-Bankcard-Signature": sign(SECRET, b"[]")}, b"[]"), "not a bank-card payment callback"),
])
def test_untrusted_callbacks_are_rejected(client: Bankcard, headers_body: tuple[dict[str, str], bytes],
                                          reason: str) -> None:
    with pytest.raises(NotifyRejected, match=reason):
        client.verify_notify(*headers_body)


@pytest.mark.parametrize("timestamp", [10**309, -(10**309)], ids=["far_future", "far_past"])
def test_a_signed_callback_with_a_timestamp_no_float_holds_is_rejected_as_stale(timestamp: int) -> None:
    # time.time() is a float: subtracting an integer past 1e308 from it raised OverflowError (answered 503).
    client = Bankcard(BankcardSettings(merchant_id="M1", secret=SECRET, cashier_url="https://pay.example/cashier"),
                      clock=lambda: NOW + 0.5)
    with pytest.raises(NotifyRejected, match="within 300 seconds"):
        client.verify_notify(*callback(timestamp=timestamp))


def test_settings_need_a_long_secret_and_an_https_cashier_outside_dev() -> None:
    env = {"BANKCARD_MERCHANT_ID": "M1", "BANKCARD_SECRET": SECRET.decode(), "BANKCARD_CASHIER_URL": "http://x/c"}
    assert BankcardSettings.from_env("prod", {}) is None
    assert BankcardSettings.from_env("dev", env) is not None
    with pytest.raises(ConfigError, match="https"):
        BankcardSettings.from_env("prod", env)
    with pytest.raises(ConfigError, match="32"):
        BankcardSettings.from_env("dev", {**env, "BANKCARD_SECRET": "short"})


class Channel:
    """A fake requests.Session for the status query: records what it is sent, answers (headers, body)."""

    def __init__(self, reply: tuple[dict[str, str], bytes], status: int = 200) -> None:
        self.reply, self.status = reply, status
        self.sent: tuple[dict[str, str], bytes] = ({}, b"")

    def post(self, url: str, *, data: bytes, timeout: float, headers: dict[str, str]) -> object:
        self.sent = (headers, data)
        headers_, body = self.reply
        return type("Answer", (), {"status_code": self.status, "headers": headers_, "content": body})()


def queried(reply: tuple[dict[str, str], bytes], status: int = 200) -> tuple[object, Channel]:
    channel = Channel(reply, status)
    client = Bankcard(BankcardSettings(merchant_id="M1", secret=SECRET, cashier_url="https://pay.example/cashier",
                                       query_url="https://pay.example/query"), clock=lambda: NOW,
                      session=channel)  # type: ignore[arg-type]
    return client.query_payment("R1"), channel


def test_a_status_query_is_signed_and_its_signed_answer_verified() -> None:
    payment, channel = queried(callback())
    headers, body = channel.sent
    assert headers["X-Bankcard-Signature"] == sign(SECRET, body)
    assert {k: v for k, v in json.loads(body).items() if k != "nonce"} == {
        "merchant_id": "M1", "out_trade_no": "R1", "timestamp": NOW}
    assert payment == CardPayment(out_trade_no="R1", trade_no="BC1", amount_fen=5_000, status="SUCCESS")
    assert queried(callback(status="NOT_FOUND", trade_no="", amount_fen=0))[0] is None


@pytest.mark.parametrize(("reply", "status", "reason"), [
    (callback(secret=b"y" * 32), 200, "does not verify"),
    ((callback()[0], callback()[1].replace(b"5000", b"5001")), 200, "does not verify"),
    (callback(out_trade_no="R2"), 200, "another payment"),
    (callback(timestamp=NOW - 301), 200, "within 300 seconds"),
    (callback(), 503, "HTTP 503"),
])
def test_untrusted_query_answers_raise(reply: tuple[dict[str, str], bytes], status: int, reason: str) -> None:
    with pytest.raises(BankcardUnavailable, match=reason):
        queried(reply, status)


def test_without_a_query_url_the_channel_cannot_say() -> None:
    client = Bankcard(BankcardSettings(merchant_id="M1", secret=SECRET, cashier_url="https://pay.example/c"))
    assert client.query_payment("R1") is None
