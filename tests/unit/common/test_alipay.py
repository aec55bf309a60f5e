"""Alipay adapter: the RSA2 order string, notify verification (signature, app_id, seller, amount), yuan/fen, and
alipay.trade.query and alipay.trade.close with their answers verified over the exact text Alipay signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.alipay import (
    Alipay,
    AlipayApiError,
    AlipaySettings,
    AlipayUnavailable,
    NotifyRejected,
    TradeNotice,
    fen_to_yuan,
    rsa2_sign,
    rsa2_verify,
    signed_response,
    signing_content,
    yuan_to_fen,
)
from tests.unit.common.test_wechatpay import pem_private, pem_public

APP_ID, SELLER = "2021000000000001", "2088000000000001"
NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def alipay_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def client(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> Alipay:
    return Alipay(AlipaySettings(app_id=APP_ID, app_private_key_pem=pem_private(app_key),
                                 alipay_public_key_pem=pem_public(alipay_key), seller_id=SELLER))


def notify(alipay_key: rsa.RSAPrivateKey, **changes: str) -> dict[str, str]:
    params = {"notify_time": "2026-12-06 10:30:00", "notify_type": "trade_status_sync", "notify_id": "n1",
              "app_id": APP_ID, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2", "trade_no": "2026T1",
              "out_trade_no": "R1", "seller_id": SELLER, "trade_status": "TRADE_SUCCESS", "total_amount": "500.05",
              "subject": "充值", "gmt_payment": "2026-12-06 10:29:59", "passback_params": ""}
    params.update(changes)
    params["sign"] = rsa2_sign(alipay_key, signing_content(params, exclude=("sign", "sign_type")))
    return params


def test_yuan_converts_to_fen_exactly_and_back() -> None:
    assert [yuan_to_fen(v) for v in ("0.01", "1", "1.5", "500.05", "999999999999.99")] == [
        1, 100, 150, 50_005, 99_999_999_999_999]
    assert [fen_to_yuan(v) for v in (1, 100, 150, 50_005)] == ["0.01", "1.00", "1.50", "500.05"]
    for bad in ("", "-1", "1.005", "01", "1e3", " 1", "1.", ".5", "１"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)


def test_signing_content_sorts_and_leaves_out_sign_and_empty_values() -> None:
    assert signing_content({"b": "2", "a": "1", "sign": "x", "c": ""}) == "a=1&b=2"
    assert signing_content({"sign_type": "RSA2", "a": "1"}, exclude=("sign", "sign_type")) == "a=1"


def test_the_order_string_is_app_pay_signed_rsa2_by_the_app(client: Alipay, app_key: rsa.RSAPrivateKey) -> None:
    order = client.app_pay_order_string(out_trade_no="R1", amount_fen=50_005, subject="充值",
                                        notify_url="https://mall.example/api/v1/payments/alipay/notify", now=NOW,
                                        time_expire=NOW + timedelta(minutes=30))
    params = dict(parse_qsl(order))
    assert rsa2_verify(app_key.public_key(), signing_content(params), params["sign"])
    assert (params["app_id"], params["method"], params["sign_type"], params["timestamp"]) == (
        APP_ID, "alipay.trade.app.pay", "RSA2", "2026-12-06 10:30:00")
    assert json.loads(params["biz_content"]) == {"out_trade_no": "R1", "total_amount": "500.05", "subject": "充值",
                                                 "product_code": "QUICK_MSECURITY_PAY",
                                                 "time_expire": "2026-12-06 11:00:00"}


def test_a_notify_signed_by_alipay_verifies(client: Alipay, alipay_key: rsa.RSAPrivateKey) -> None:
    notice = client.verify_notify(notify(alipay_key))
    assert (notice.out_trade_no, notice.trade_no, notice.total_fen, notice.paid) == ("R1", "2026T1", 50_005, True)
    assert client.verify_notify(notify(alipay_key, trade_status="WAIT_BUYER_PAY")).paid is False


@pytest.mark.parametrize(("spoil", "reason"), [
    (lambda p, k, a: {**p, "total_amount": "0.01"}, "sign does not verify"),
    (lambda p, k, a: {**p, "sign": p["sign"][:-4] + "AAAA"}, "sign does not verify"),
    (lambda p, k, a: {**p, "sign": "not base64!"}, "sign does not verify"),
    (lambda p, k, a: {**p, "sign_type": "RSA"}, "unsupported sign_type"),
    (lambda p, k, a: notify(k, app_id="2021000000000000"), "app_id"),
    (lambda p, k, a: notify(k, seller_id="2088999999999999"), "seller_id"),
    (lambda p, k, a: notify(k, total_amount="5.001"), "total_amount"),
    (lambda p, k, a: notify(k, out_trade_no=""), "lacks"),
    (lambda p, k, a: notify(a), "sign does not verify"),  # signed with the app's own key, not Alipay's
])
def test_untrusted_notifies_are_rejected(client: Alipay, alipay_key: rsa.RSAPrivateKey, app_key: rsa.RSAPrivateKey,
                                         spoil, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotifyRejected, match=reason):
        client.verify_notify(spoil(notify(alipay_key), alipay_key, app_key))


def test_settings_are_off_without_an_app_id_and_read_key_files(tmp_path, app_key, alipay_key) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "app.pem").write_bytes(pem_private(app_key))
    (tmp_path / "alipay.pem").write_bytes(pem_public(alipay_key))
    assert AlipaySettings.from_env({}) is None
    settings = AlipaySettings.from_env({"ALIPAY_APP_ID": APP_ID, "ALIPAY_APP_PRIVATE_KEY_FILE": str(tmp_path / "app.pem"),
                                        "ALIPAY_PUBLIC_KEY_FILE": str(tmp_path / "alipay.pem")})
    assert settings is not None and settings.seller_id is None and "app_private_key_pem" not in repr(settings)


class Gateway:
    """A fake requests.Session: records the query it is sent, answers `text` (HTTP `status`)."""

    def __init__(self, text: str, status: int = 200) -> None:
        self.text, self.status = text, status
        self.sent: dict[str, str] = {}

    def post(self, url: str, *, data: dict[str, str], timeout: float, headers: dict[str, str]) -> object:
        self.sent = dict(data)
        return type("Answer", (), {"status_code": self.status, "content": self.text.encode()})()


def answer(key: rsa.RSAPrivateKey, content: str, *, sign_over: str | None = None) -> str:
    """A gateway answer as Alipay writes it: the response object's exact text, then the sign over that text."""
    return f'{{"alipay_trade_query_response":{content},"sign":"{rsa2_sign(key, sign_over or content)}"}}'


PAID = ('{"code":"10000","msg":"Success","trade_no":"2026T1","out_trade_no":"R1","trade_status":"TRADE_SUCCESS",'
        '"total_amount":"500.05","buyer_logon_id":"159****5620"}')


def query(client: Alipay, gateway: Gateway) -> TradeNotice | None:
    client.session = gateway  # type: ignore[assignment]
    return client.query_trade("R1", now=NOW)


def test_a_trade_query_is_signed_by_the_app_and_its_answer_verified_over_its_exact_text(
        client: Alipay, app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    gateway = Gateway(answer(alipay_key, PAID.replace(",", ", ")))  # spacing as sent is what the sign covers
    notice = query(client, gateway)
    assert rsa2_verify(app_key.public_key(), signing_content(gateway.sent), gateway.sent["sign"])
    assert (gateway.sent["method"], json.loads(gateway.sent["biz_content"])) == ("alipay.trade.query",
                                                                                 {"out_trade_no": "R1"})
    assert notice == TradeNotice(out_trade_no="R1", trade_no="2026T1", trade_status="TRADE_SUCCESS",
                                 total_fen=50_005, app_id=APP_ID, paid=True)


def test_a_trade_alipay_does_not_know_is_none_and_an_unpaid_one_not_paid(client: Alipay,
                                                                        alipay_key: rsa.RSAPrivateKey) -> None:
    missing = '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}'
    assert query(client, Gateway(answer(alipay_key, missing))) is None
    waiting = query(client, Gateway(answer(alipay_key, PAID.replace("TRADE_SUCCESS", "WAIT_BUYER_PAY"))))
    assert waiting is not None and waiting.paid is False


@pytest.mark.parametrize(("text", "error", "reason"), [
    (lambda a, k: answer(k, PAID, sign_over=PAID.replace("500.05", "5.00")), AlipayUnavailable, "does not verify"),
    (lambda a, k: answer(a, PAID), AlipayUnavailable, "does not verify"),  # the app's own key, not Alipay's
    (lambda a, k: answer(k, PAID).replace('"sign":"', '"sign":"AAAA'), AlipayUnavailable, "does not verify"),
    (lambda a, k: answer(k, PAID.replace('"R1"', '"R2"')), AlipayUnavailable, "another trade"),
    (lambda a, k: answer(k, PAID.replace("500.05", "500.5x")), AlipayUnavailable, "total_amount"),
    (lambda a, k: "<html>busy</html>", AlipayUnavailable, "not an alipay.trade.query answer"),
    (lambda a, k: answer(k, '{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}'),
     AlipayApiError, "isp.unknow-error"),
])
def test_untrusted_or_failed_query_answers_raise(client: Alipay, app_key: rsa.RSAPrivateKey,
                                                 alipay_key: rsa.RSAPrivateKey, text, error, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=reason):
        query(client, Gateway(text(app_key, alipay_key)))


def test_signed_response_cuts_the_object_as_sent_even_when_its_name_appears_in_a_value() -> None:
    text = '{"note":"\\"alipay_trade_query_response\\"", "alipay_trade_query_response" : {"a": "1"},"sign":"S"}'
    assert signed_response(text, "alipay_trade_query_response") == ('{"a": "1"}', "S")


def close_answer(key: rsa.RSAPrivateKey, content: str, *, sign_over: str | None = None) -> str:
    return f'{{"alipay_trade_close_response":{content},"sign":"{rsa2_sign(key, sign_over or content)}"}}'


CLOSED = '{"code":"10000","msg":"Success","trade_no":"2026T1","out_trade_no":"R1"}'


def test_a_trade_close_is_signed_by_the_app_and_its_answer_verified(
        client: Alipay, app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    gateway = Gateway(close_answer(alipay_key, CLOSED))
    client.session = gateway  # type: ignore[assignment]

    client.close_trade("R1", now=NOW)

    assert rsa2_verify(app_key.public_key(), signing_content(gateway.sent), gateway.sent["sign"])
    assert (gateway.sent["method"], json.loads(gateway.sent["biz_content"])) == ("alipay.trade.close",
                                                                                 {"out_trade_no": "R1"})


@pytest.mark.parametrize(("text", "error", "reason"), [
    (lambda k: close_answer(k, '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR",'
                               '"sub_msg":"交易状态不合法"}'), AlipayApiError, "ACQ.TRADE_STATUS_ERROR"),
    (lambda k: close_answer(k, '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST",'
                               '"sub_msg":"交易不存在"}'), AlipayApiError, "ACQ.TRADE_NOT_EXIST"),
    (lambda k: close_answer(k, CLOSED, sign_over=CLOSED.replace("R1", "R2")), AlipayUnavailable, "does not verify"),
    (lambda k: close_answer(k, CLOSED.replace('"R1"', '"R2"')), AlipayUnavailable, "another trade"),
    (lambda k: answer(k, CLOSED), AlipayUnavailable, "not an alipay.trade.close answer"),  # a query's answer
])
def test_a_refused_or_untrusted_close_answer_raises(client: Alipay, alipay_key: rsa.RSAPrivateKey, text, error,  # type: ignore[no-untyped-def]
                                                    reason: str) -> None:
    client.session = Gateway(text(alipay_key))  # type: ignore[assignment]

    with pytest.raises(error, match=reason):
        client.close_trade("R1", now=NOW)
