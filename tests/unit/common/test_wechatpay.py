"""WeChat Pay v3 merchant adapter: request and paySign signatures, answer and notify verification, decryption."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from services.common.config import ConfigError
from services.common.wechatpay import (
    NotifyRejected,
    PaymentNotice,
    WechatPay,
    WechatPayApiError,
    WechatPaySettings,
    WechatPayUnavailable,
    aead_decrypt,
    authorization,
    encrypting_serial,
)

NOW = 1_795_000_000
MCHID, APPID, SERIAL = "1900000109", "wx5e1f0c0ffee0d0e1", "PUB_KEY_ID_0119000001092026000000000000000001"
APIV3_KEY = b"0123456789abcdef0123456789abcdef"


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def platform_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def settings(merchant_key: rsa.RSAPrivateKey, platform_key: rsa.RSAPrivateKey) -> WechatPaySettings:
    return WechatPaySettings(api_base="https://api.mch.example", mchid=MCHID, appid=APPID,
                             merchant_serial="5E1F0C0FFEE0D0E1", merchant_private_key_pem=pem_private(merchant_key),
                             apiv3_key=APIV3_KEY, platform_keys={SERIAL: pem_public(platform_key)})


class FakeSession(requests.Session):
    """Records the requests WechatPay sends and answers each with the next queued response."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []
        self.answers: list[requests.Response] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        return self.answers.pop(0)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def pay(settings: WechatPaySettings, session: FakeSession) -> WechatPay:
    return WechatPay(settings, session, clock=lambda: NOW)


def signed_headers(key: rsa.RSAPrivateKey, body: bytes, timestamp: int = NOW, serial: str = SERIAL,
                   nonce: str = "a1b2c3d4e5f6") -> dict[str, str]:
    signature = key.sign(f"{timestamp}\n{nonce}\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256())
    return {"Wechatpay-Serial": serial, "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}


def transaction(**overrides: Any) -> dict[str, Any]:
    data = {"mchid": MCHID, "appid": APPID, "out_trade_no": "T202611290001", "transaction_id": "4200001234202611290001",
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "success_time": "2026-11-29T18:30:05+08:00",
            "payer": {"openid": "o-payer"}, "amount": {"total": 12_345, "payer_total": 12_345, "currency": "CNY"}}
    data.update(overrides)
    return data


def notify_body(resource: dict[str, Any], key: bytes = APIV3_KEY, original_type: str = "transaction") -> bytes:
    nonce = "0123abcd4567"
    ciphertext = AESGCM(key).encrypt(nonce.encode(), json.dumps(resource).encode(), original_type.encode())
    return json.dumps({"id": "EV-1", "create_time": "2026-11-29T18:30:06+08:00", "resource_type": "encrypt-resource",
                       "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
                       "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                                    "ciphertext": base64.b64encode(ciphertext).decode(),
                                    "associated_data": original_type, "nonce": nonce}},
                      ensure_ascii=False).encode()


def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def signed_answer(key: rsa.RSAPrivateKey, status: int, body: dict[str, Any]) -> requests.Response:
    response = answer(status, body)
    response.headers.update(signed_headers(key, response.content))
    return response


# -- signing ---------------------------------------------------------------------------------------


def test_the_authorization_header_signs_method_path_query_timestamp_nonce_and_body(
        merchant_key: rsa.RSAPrivateKey) -> None:
    header = authorization(MCHID, "5E1F", merchant_key, "GET", "/v3/pay/transactions/out-trade-no/T1?mchid=1900000109",
                           "", 1_795_000_000, "NONCE42")

    schema, _, params = header.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    assert schema == "WECHATPAY2-SHA256-RSA2048"
    assert {k: v for k, v in fields.items() if k != "signature"} == {
        "mchid": MCHID, "nonce_str": "NONCE42", "timestamp": "1795000000", "serial_no": "5E1F"}
    merchant_key.public_key().verify(
        base64.b64decode(fields["signature"]),
        b"GET\n/v3/pay/transactions/out-trade-no/T1?mchid=1900000109\n1795000000\nNONCE42\n\n",
        padding.PKCS1v15(), hashes.SHA256())


def test_prepay_sends_the_jsapi_order_signed_and_returns_the_prepay_id(
        pay: WechatPay, session: FakeSession, merchant_key: rsa.RSAPrivateKey, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, {"prepay_id": "wx29183005abc"}))

    prepay_id = pay.jsapi_prepay(out_trade_no="T202611290001", description="MiniMall 订单", amount_fen=12_345,
                                 payer_openid="o-payer", notify_url="https://shop.example/payments/wechat/notify",
                                 time_expire=datetime(2026, 11, 29, 11, 0, tzinfo=UTC))

    assert prepay_id == "wx29183005abc"
    sent = session.sent[0]
    assert (sent.method, sent.url) == ("POST", "https://api.mch.example/v3/pay/transactions/jsapi")
    assert sent.headers["Wechatpay-Serial"] == SERIAL  # the public-key id the merchant verifies with
    assert json.loads(sent.body) == {
        "appid": APPID, "mchid": MCHID, "description": "MiniMall 订单", "out_trade_no": "T202611290001",
        "time_expire": "2026-11-29T19:00:00+08:00", "notify_url": "https://shop.example/payments/wechat/notify",
        "amount": {"total": 12_345, "currency": "CNY"}, "payer": {"openid": "o-payer"}}
    fields = dict(re.findall(r'(\w+)="([^"]*)"', sent.headers["Authorization"]))
    message = f"POST\n/v3/pay/transactions/jsapi\n{NOW}\n{fields['nonce_str']}\n".encode() + sent.body + b"\n"
    merchant_key.public_key().verify(base64.b64decode(fields["signature"]), message, padding.PKCS1v15(),
                                     hashes.SHA256())


def test_the_request_payment_params_carry_a_pay_sign_over_appid_timestamp_nonce_and_package(
        pay: WechatPay, merchant_key: rsa.RSAPrivateKey) -> None:
    params = pay.request_payment_params("wx29183005abc")

    assert {k: params[k] for k in ("appId", "timeStamp", "package", "signType")} == {
        "appId": APPID, "timeStamp": str(NOW), "package": "prepay_id=wx29183005abc", "signType": "RSA"}
    message = f"{APPID}\n{NOW}\n{params['nonceStr']}\nprepay_id=wx29183005abc\n".encode()
    merchant_key.public_key().verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())


# -- answers ---------------------------------------------------------------------------------------


def test_a_query_answer_signed_by_the_platform_gives_the_transaction(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, transaction()))

    notice = pay.query_by_out_trade_no("T202611290001")

    assert session.sent[0].url == "https://api.mch.example/v3/pay/transactions/out-trade-no/T202611290001?mchid=1900000109"
    assert (notice.trade_state, notice.amount_total_fen, notice.transaction_id) == ("SUCCESS", 12_345,
                                                                                    "4200001234202611290001")


def test_an_answer_with_a_forged_signature_is_not_trusted(
        pay: WechatPay, session: FakeSession, merchant_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(merchant_key, 200, transaction()))

    with pytest.raises(WechatPayUnavailable, match="does not verify"):
        pay.query_by_out_trade_no("T202611290001")


def test_an_unsigned_answer_is_not_trusted(pay: WechatPay, session: FakeSession) -> None:
    session.answers.append(answer(200, {"prepay_id": "wx-forged"}))

    with pytest.raises(WechatPayUnavailable, match="missing"):
        pay.query_by_out_trade_no("T202611290001")


def test_a_signed_error_answer_raises_the_api_error_with_its_code(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))

    with pytest.raises(WechatPayApiError) as raised:
        pay.query_by_out_trade_no("T404")

    assert (raised.value.status, raised.value.code) == (404, "ORDER_NOT_EXIST")


def test_a_server_error_is_unavailable_and_the_log_holds_no_signature(
        pay: WechatPay, session: FakeSession, caplog: pytest.LogCaptureFixture) -> None:
    session.answers.append(answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}))

    with caplog.at_level(logging.DEBUG), pytest.raises(WechatPayUnavailable, match="500 SYSTEM_ERROR"):
        pay.query_by_out_trade_no("T202611290001")

    signature = dict(re.findall(r'(\w+)="([^"]*)"', session.sent[0].headers["Authorization"]))["signature"]
    assert "SYSTEM_ERROR" in caplog.text
    assert signature not in caplog.text and APIV3_KEY.decode() not in caplog.text


def test_a_refund_is_posted_with_its_amounts_and_read_back(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    refund = {"refund_id": "50000000382019052709732678859", "out_refund_no": "R1", "transaction_id": "4200001",
              "out_trade_no": "T202611290001", "status": "PROCESSING", "amount": {"refund": 100, "total": 12_345}}
    session.answers.append(signed_answer(platform_key, 200, refund))

    result = pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=12_345)

    assert json.loads(session.sent[0].body) == {"out_trade_no": "T202611290001", "out_refund_no": "R1",
                                                "amount": {"refund": 100, "total": 12_345, "currency": "CNY"}}
    assert (result.status, result.refund_fen, result.total_fen) == ("PROCESSING", 100, 12_345)


def test_a_refund_asked_without_a_notify_url_notifies_the_one_the_adapter_was_built_with(
        settings: WechatPaySettings, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    pay = WechatPay(settings, session, clock=lambda: NOW, refund_notify_url="https://mall.example/refund-notify")
    refund = {"refund_id": "5000001", "out_refund_no": "R1", "transaction_id": "4200001",
              "out_trade_no": "T202611290001", "status": "PROCESSING", "amount": {"refund": 100, "total": 100}}
    session.answers.extend(signed_answer(platform_key, 200, refund) for _ in range(2))

    pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=100)
    pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=100,
               notify_url="https://mall.example/other")

    assert [json.loads(sent.body)["notify_url"] for sent in session.sent] == [
        "https://mall.example/refund-notify", "https://mall.example/other"]


# -- notifies --------------------------------------------------------------------------------------


def test_a_genuine_notify_is_decrypted_into_the_payment_notice(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())

    notice = pay.verify_notify(signed_headers(platform_key, body), body)

    assert notice == PaymentNotice(out_trade_no="T202611290001", transaction_id="4200001234202611290001",
                                   trade_state="SUCCESS", amount_total_fen=12_345, payer_total_fen=12_345,
                                   mchid=MCHID, appid=APPID, success_time=datetime(2026, 11, 29, 10, 30, 5, tzinfo=UTC),
                                   payer_openid="o-payer")


def test_notify_headers_are_matched_whatever_their_case(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())
    headers = {name.lower(): value for name, value in signed_headers(platform_key, body).items()}

    assert pay.verify_notify(headers, body.decode()).out_trade_no == "T202611290001"


def test_a_notify_whose_body_was_changed_after_signing_is_rejected(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())
    headers = signed_headers(platform_key, body)

    with pytest.raises(NotifyRejected, match="Wechatpay-Signature does not verify"):
        pay.verify_notify(headers, body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCEZZ"))


def test_a_notify_signed_by_another_key_is_rejected(pay: WechatPay, merchant_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())

    with pytest.raises(NotifyRejected, match="Wechatpay-Signature does not verify"):
        pay.verify_notify(signed_headers(merchant_key, body), body)


def test_a_notify_with_an_unknown_serial_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())

    with pytest.raises(NotifyRejected, match="unknown Wechatpay-Serial"):
        pay.verify_notify(signed_headers(platform_key, body, serial="PUB_KEY_ID_OTHER"), body)


@pytest.mark.parametrize("age_seconds", [301, -301])
def test_a_notify_more_than_five_minutes_off_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey,
                                                         age_seconds: int) -> None:
    body = notify_body(transaction())

    with pytest.raises(NotifyRejected, match="Wechatpay-Timestamp"):
        pay.verify_notify(signed_headers(platform_key, body, timestamp=NOW - age_seconds), body)


@pytest.mark.parametrize("timestamp", ["9" * 400, "1" * 5000, "\u00b2"], ids=["past_1e308", "past_4300_digits",
                                                                           "superscript_two"])
def test_a_notify_whose_timestamp_is_no_time_is_rejected_not_a_crash(settings: WechatPaySettings,
                                                                   session: FakeSession, platform_key: rsa.RSAPrivateKey,
                                                                   timestamp: str) -> None:
    # Checked before the signature: int() refused "²" (isdigit) and 5000 digits, and time.time() minus an integer past
    # 1e308 overflowed, each a 500 for anyone who knew a platform serial.
    pay = WechatPay(settings, session, clock=lambda: NOW + 0.5)
    body = notify_body(transaction())
    headers = {**signed_headers(platform_key, body), "Wechatpay-Timestamp": timestamp}

    with pytest.raises(NotifyRejected, match="Wechatpay-Timestamp"):
        pay.verify_notify(headers, body)


def test_a_notify_five_minutes_old_is_still_accepted(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction())

    assert pay.verify_notify(signed_headers(platform_key, body, timestamp=NOW - 300), body).amount_total_fen == 12_345


def test_a_notify_encrypted_under_another_apiv3_key_is_rejected(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction(), key=b"x" * 32)

    with pytest.raises(NotifyRejected, match="bad GCM tag"):
        pay.verify_notify(signed_headers(platform_key, body), body)


@pytest.mark.parametrize(("field", "value"), [("mchid", "1900000000"), ("appid", "wx0000000000000000")])
def test_a_notify_for_another_merchant_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey,
                                                   field: str, value: str) -> None:
    body = notify_body(transaction(**{field: value}))

    with pytest.raises(NotifyRejected, match=f"{field} does not match"):
        pay.verify_notify(signed_headers(platform_key, body), body)


def test_a_notify_without_signature_headers_is_rejected(pay: WechatPay) -> None:
    with pytest.raises(NotifyRejected, match="missing"):
        pay.verify_notify({}, notify_body(transaction()))


def test_a_refund_notify_is_not_accepted_as_a_payment(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body({"mchid": MCHID, "out_trade_no": "T1"}, original_type="refund")

    with pytest.raises(NotifyRejected, match="expected a transaction notify"):
        pay.verify_notify(signed_headers(platform_key, body), body)


def test_a_refund_notify_gives_the_refund(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    resource = {"mchid": MCHID, "out_trade_no": "T1", "transaction_id": "4200001", "out_refund_no": "R1",
                "refund_id": "50001", "refund_status": "SUCCESS", "success_time": "2026-11-29T18:40:00+08:00",
                "amount": {"total": 12_345, "refund": 100, "payer_total": 12_345, "payer_refund": 100}}
    body = envelope(resource, event_type="REFUND.SUCCESS", original_type="refund")

    refund = pay.verify_refund_notify(signed_headers(platform_key, body), body)

    assert (refund.out_refund_no, refund.status, refund.refund_fen, refund.success_time) == (
        "R1", "SUCCESS", 100, datetime(2026, 11, 29, 10, 40, tzinfo=UTC))


def test_aead_decrypt_matches_a_fixed_vector() -> None:
    ciphertext = "YWMX+rP1hW5KKQGBzkSSBnQVpLqPuotOEr0EBYCOJ9ZGrIxHkg=="

    assert aead_decrypt(APIV3_KEY, "fixednonce12", "transaction", ciphertext) == b'{"out_trade_no":"T1"}'


# -- settings --------------------------------------------------------------------------------------


def test_wechat_pay_is_off_without_a_merchant_id() -> None:
    assert WechatPaySettings.from_env("prod", {}) is None


def test_a_plain_http_api_base_is_refused_outside_dev_and_test() -> None:
    with pytest.raises(ConfigError, match="WECHATPAY_API_BASE must be an https URL"):
        WechatPaySettings.from_env("prod", {"WECHATPAY_MCHID": MCHID, "WECHATPAY_API_BASE": "http://sim:8099"})


def test_an_apiv3_key_that_is_not_32_bytes_is_refused() -> None:
    with pytest.raises(ConfigError, match="32 bytes, got 31"):
        WechatPaySettings.from_env("test", {"WECHATPAY_MCHID": MCHID, "WECHATPAY_APIV3_KEY": "k" * 31})


def test_the_settings_repr_shows_no_secret(settings: WechatPaySettings) -> None:
    assert APIV3_KEY.decode() not in repr(settings) and "PRIVATE KEY" not in repr(settings)


def test_a_prepay_deadline_without_a_timezone_is_refused(pay: WechatPay) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pay.jsapi_prepay(out_trade_no="T1", description="d", amount_fen=1, payer_openid="o", notify_url="https://n",
                         time_expire=datetime(2026, 11, 29) + timedelta(minutes=30))


@pytest.mark.parametrize("amount_fen", [0, 2**31])
def test_a_prepay_amount_outside_what_wechat_pay_takes_is_refused_before_it_is_sent(pay: WechatPay,
                                                                                  amount_fen: int) -> None:
    with pytest.raises(ValueError, match=r"amount_fen must be in 1\.\.2147483647"):
        pay.jsapi_prepay(out_trade_no="T1", description="d", amount_fen=amount_fen, payer_openid="o",
                         notify_url="https://n", time_expire=datetime(2026, 11, 29, tzinfo=UTC))


def self_signed(key: rsa.RSAPrivateKey, serial_number: int, days: int = 365) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(serial_number).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_a_platform_certificate_verifies_notifies_under_its_serial(
        settings: WechatPaySettings, platform_key: rsa.RSAPrivateKey) -> None:
    serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    pay = WechatPay(replace(settings, platform_keys={serial: self_signed(platform_key, int(serial, 16))}),
                    clock=lambda: NOW)
    body = notify_body(transaction())

    assert pay.verify_notify(signed_headers(platform_key, body, serial=serial), body).amount_total_fen == 12_345


def test_a_platform_certificate_listed_under_another_serial_is_refused(
        settings: WechatPaySettings, platform_key: rsa.RSAPrivateKey) -> None:
    certificate = self_signed(platform_key, 0x5157F09E)

    with pytest.raises(ConfigError, match="has serial 5157F09E"):
        WechatPay(replace(settings, platform_keys={"6157F09E": certificate}))


def test_closing_posts_the_mchid_and_accepts_the_signed_empty_answer(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    response = requests.Response()
    response.status_code, response._content = 204, b""
    response.headers.update(signed_headers(platform_key, b""))
    session.answers.append(response)

    pay.close("T202611290001")

    sent = session.sent[0]
    assert (sent.url, json.loads(sent.body)) == (
        "https://api.mch.example/v3/pay/transactions/out-trade-no/T202611290001/close", {"mchid": MCHID})


# -- merchant transfers ----------------------------------------------------------------------------


def test_a_transfer_posts_the_bill_and_reads_the_signed_answer(pay: WechatPay, session: FakeSession,
                                                               platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, {"out_bill_no": "W1", "transfer_bill_no": "1330X",
                                                             "state": "SUCCESS", "create_time": "x"}))
    session.answers.append(signed_answer(platform_key, 200, {"out_bill_no": "W1", "transfer_bill_no": "1330X",
                                                             "state": "FAIL", "fail_reason": "PAYEE_ACCOUNT_ABNORMAL"}))
    bill = pay.transfer(out_bill_no="W1", openid="o-payee", amount_fen=6_000, remark="会员余额提现")
    queried = pay.query_transfer("W1")

    sent = json.loads(session.sent[0].body or b"{}")
    assert (session.sent[0].method, session.sent[0].path_url) == ("POST", "/v3/fund-app/mch-transfer/transfer-bills")
    assert {k: sent[k] for k in ("appid", "out_bill_no", "openid", "transfer_amount")} == {
        "appid": APPID, "out_bill_no": "W1", "openid": "o-payee", "transfer_amount": 6_000}
    assert session.sent[1].path_url == "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/W1"
    assert (bill.state, bill.transfer_bill_no, queried.state, queried.fail_reason) == (
        "SUCCESS", "1330X", "FAIL", "PAYEE_ACCOUNT_ABNORMAL")


# WeChat Pay's answer to a new transfer, as its documentation and its merchants' logs show it: waiting for the user.
WAITING_BILL = {"out_bill_no": "W2", "transfer_bill_no": "1330007352452862501230094175387091",
                "create_time": "2025-01-23T10:13:27+08:00", "state": "WAIT_USER_CONFIRM",
                "package_info": "ABBQO+oYAAABAAAAAAA3AWYF6V6QHI9SyKWRZxAAAADnGpepZahT9IkJjn90+1qgNWH8z+85pNf542Kp"}


def test_a_transfer_awaiting_the_user_keeps_the_package_info_they_confirm_it_with(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, WAITING_BILL))
    session.answers.append(signed_answer(platform_key, 200, {  # the bill query's answer carries no package_info
        "mch_id": MCHID, "appid": APPID, "out_bill_no": "W2", "transfer_bill_no": WAITING_BILL["transfer_bill_no"],
        "state": "WAIT_USER_CONFIRM", "transfer_amount": 6_000, "openid": "o-payee"}))

    bill = pay.transfer(out_bill_no="W2", openid="o-payee", amount_fen=6_000, remark="会员余额提现")
    queried = pay.query_transfer("W2")

    assert (bill.state, bill.package_info) == ("WAIT_USER_CONFIRM", WAITING_BILL["package_info"])
    assert (queried.state, queried.package_info) == ("WAIT_USER_CONFIRM", "")


def test_a_transfer_of_two_thousand_yuan_is_not_sent_without_the_payees_name(pay: WechatPay,
                                                                           session: FakeSession) -> None:
    with pytest.raises(ValueError, match="user_name"):
        pay.transfer(out_bill_no="W3", openid="o-payee", amount_fen=200_000, remark="会员余额提现")
    assert session.sent == []


def oaep_decrypt(key: rsa.RSAPrivateKey, ciphertext: str) -> str:
    """What WeChat Pay does with a sensitive field: RSA/ECB/OAEPWithSHA-1AndMGF1Padding under its platform key."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return key.decrypt(base64.b64decode(ciphertext), oaep).decode()


def test_a_named_transfer_encrypts_the_payees_name_to_the_platform_key_it_names(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers += [signed_answer(platform_key, 200, {**WAITING_BILL, "out_bill_no": "W4"}),
                        signed_answer(platform_key, 200, {**WAITING_BILL, "out_bill_no": "W5"})]

    pay.transfer(out_bill_no="W4", openid="o-payee", amount_fen=200_000, remark="会员余额提现", user_name="张三")
    pay.transfer(out_bill_no="W5", openid="o-payee", amount_fen=200_000, remark="会员余额提现", user_name="张三")

    first, second = (json.loads(request.body or b"") for request in session.sent)
    assert oaep_decrypt(platform_key, first["user_name"]) == oaep_decrypt(platform_key, second["user_name"]) == "张三"
    assert first["user_name"] != second["user_name"]  # OAEP is randomised: the name is not recognisable on the wire
    assert "张三" not in (session.sent[0].body or b"").decode()
    assert session.sent[0].headers["Wechatpay-Serial"] == SERIAL


def test_the_newest_platform_certificate_is_encrypted_to_unless_a_wechat_pay_public_key_is_configured(
        platform_key: rsa.RSAPrivateKey) -> None:
    older, newer = self_signed(platform_key, 0x1A, days=30), self_signed(platform_key, 0x2B, days=400)

    assert encrypting_serial({"1A": older, "2B": newer}) == encrypting_serial({"2B": newer, "1A": older}) == "2B"
    assert encrypting_serial({"1A": older, SERIAL: pem_public(platform_key)}) == SERIAL


# -- protocol review: envelope, currency, retryable refusals, deadline format ---------------------


def envelope(resource: dict[str, Any], *, event_type: str, original_type: str,
             resource_type: str = "encrypt-resource") -> bytes:
    """A notify body like `notify_body`, with its envelope's event_type and resource_type chosen."""
    data = json.loads(notify_body(resource, original_type=original_type))
    data.update(event_type=event_type, resource_type=resource_type)
    return json.dumps(data, ensure_ascii=False).encode()


def refund_resource(status: str) -> dict[str, Any]:
    return {"mchid": MCHID, "out_trade_no": "T1", "transaction_id": "4200001", "out_refund_no": "R1",
            "refund_id": "50001", "refund_status": status,
            "amount": {"total": 12_345, "refund": 100, "payer_total": 12_345, "payer_refund": 100, "currency": "CNY"}}


def test_a_payment_notify_whose_event_is_not_transaction_success_is_rejected(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = envelope(transaction(), event_type="REFUND.SUCCESS", original_type="transaction")

    with pytest.raises(NotifyRejected, match="event_type 'REFUND.SUCCESS'"):
        pay.verify_notify(signed_headers(platform_key, body), body)


def test_a_notify_that_is_not_an_encrypted_resource_is_rejected(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = envelope(transaction(), event_type="TRANSACTION.SUCCESS", original_type="transaction",
                    resource_type="plain-resource")

    with pytest.raises(NotifyRejected, match="resource_type"):
        pay.verify_notify(signed_headers(platform_key, body), body)


@pytest.mark.parametrize("status", ["SUCCESS", "ABNORMAL", "CLOSED"])
def test_each_refund_notify_event_gives_its_refund_status(pay: WechatPay, platform_key: rsa.RSAPrivateKey,
                                                          status: str) -> None:
    body = envelope(refund_resource(status), event_type=f"REFUND.{status}", original_type="refund")

    assert pay.verify_refund_notify(signed_headers(platform_key, body), body).status == status


def test_a_refund_notify_whose_event_contradicts_its_status_is_rejected(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = envelope(refund_resource("CLOSED"), event_type="REFUND.SUCCESS", original_type="refund")

    with pytest.raises(NotifyRejected, match="REFUND.SUCCESS.*CLOSED"):
        pay.verify_refund_notify(signed_headers(platform_key, body), body)


def test_a_refund_notify_of_an_unknown_event_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = envelope(refund_resource("SUCCESS"), event_type="TRANSACTION.SUCCESS", original_type="refund")

    with pytest.raises(NotifyRejected, match="event_type 'TRANSACTION.SUCCESS'"):
        pay.verify_refund_notify(signed_headers(platform_key, body), body)


def test_a_refund_notify_for_another_merchant_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = envelope({**refund_resource("SUCCESS"), "mchid": "1900000000"}, event_type="REFUND.SUCCESS",
                    original_type="refund")

    with pytest.raises(NotifyRejected, match="mchid does not match"):
        pay.verify_refund_notify(signed_headers(platform_key, body), body)


def test_a_payment_notify_in_another_currency_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction(amount={"total": 12_345, "payer_total": 12_345, "currency": "USD"}))

    with pytest.raises(NotifyRejected, match="currency 'USD'"):
        pay.verify_notify(signed_headers(platform_key, body), body)


def test_a_refund_notify_in_another_currency_is_rejected(pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    resource = refund_resource("SUCCESS")
    resource["amount"]["currency"] = "HKD"
    body = envelope(resource, event_type="REFUND.SUCCESS", original_type="refund")

    with pytest.raises(NotifyRejected, match="currency 'HKD'"):
        pay.verify_refund_notify(signed_headers(platform_key, body), body)


def test_a_query_answer_in_another_currency_is_not_trusted(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, transaction(
        amount={"total": 12_345, "payer_total": 12_345, "currency": "USD"})))

    with pytest.raises(WechatPayUnavailable, match="currency 'USD'"):
        pay.query_by_out_trade_no("T202611290001")


def test_a_payment_notify_that_is_not_paid_is_still_reported_with_its_state(
        pay: WechatPay, platform_key: rsa.RSAPrivateKey) -> None:
    body = notify_body(transaction(trade_state="PAYERROR", transaction_id=None, success_time=None))

    assert pay.verify_notify(signed_headers(platform_key, body), body).trade_state == "PAYERROR"


def test_a_rate_limited_refund_is_unavailable_not_a_refusal(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}))

    with pytest.raises(WechatPayUnavailable, match="429 FREQUENCY_LIMITED"):
        pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=12_345)


def test_a_refused_refund_keeps_its_code_and_message(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 403, {"code": "NOT_ENOUGH", "message": "余额不足"}))

    with pytest.raises(WechatPayApiError) as raised:
        pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=12_345)

    assert (raised.value.status, raised.value.code, raised.value.message) == (403, "NOT_ENOUGH", "余额不足")


def test_a_signed_error_answer_whose_signature_fails_is_unavailable_not_a_refusal(
        pay: WechatPay, session: FakeSession, merchant_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(merchant_key, 404, {"code": "ORDER_NOT_EXIST", "message": "forged"}))

    with pytest.raises(WechatPayUnavailable, match="does not verify"):
        pay.query_by_out_trade_no("T404")


def test_the_prepay_deadline_is_sent_in_beijing_time(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    session.answers.append(signed_answer(platform_key, 200, {"prepay_id": "wx29183005abc"}))

    pay.jsapi_prepay(out_trade_no="T202611290001", description="d", amount_fen=1, payer_openid="o",
                     notify_url="https://n.example/notify", time_expire=datetime(2026, 11, 29, 23, 30, tzinfo=UTC))

    assert json.loads(session.sent[0].body)["time_expire"] == "2026-11-30T07:30:00+08:00"


def test_a_timed_out_request_is_sent_once(pay: WechatPay, session: FakeSession) -> None:
    def timeout(request: requests.PreparedRequest, **_: Any) -> requests.Response:
        session.sent.append(request)
        raise requests.Timeout("read timed out")

    session.send = timeout  # type: ignore[method-assign]

    with pytest.raises(WechatPayUnavailable, match="Timeout"):
        pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=12_345)

    assert len(session.sent) == 1  # never re-sent blindly: the refund engine queries, then resends by number


@pytest.mark.parametrize(("field", "value"), [("out_trade_no", "T202611290002"), ("mchid", "1900000000"),
                                              ("appid", "wx0000000000000000")])
def test_a_query_answer_about_another_transaction_or_merchant_is_not_trusted(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey, field: str, value: str) -> None:
    session.answers.append(signed_answer(platform_key, 200, transaction(**{field: value})))

    with pytest.raises(WechatPayUnavailable, match=f"{field} is not the one asked"):
        pay.query_by_out_trade_no("T202611290001")


def test_a_refund_answer_about_another_refund_is_not_trusted(
        pay: WechatPay, session: FakeSession, platform_key: rsa.RSAPrivateKey) -> None:
    refund = {"refund_id": "5000001", "out_refund_no": "R2", "transaction_id": "4200001",
              "out_trade_no": "T202611290001", "status": "SUCCESS", "amount": {"refund": 100, "total": 12_345}}
    session.answers.extend(signed_answer(platform_key, 200, refund) for _ in range(2))

    with pytest.raises(WechatPayUnavailable, match="out_refund_no is not the one asked"):
        pay.refund(out_trade_no="T202611290001", out_refund_no="R1", refund_fen=100, total_fen=12_345)
    with pytest.raises(WechatPayUnavailable, match="out_refund_no is not the one asked"):
        pay.query_refund("R1")


def test_a_platform_certificate_listed_under_its_serial_in_lower_case_verifies_notifies(
        settings: WechatPaySettings, platform_key: rsa.RSAPrivateKey) -> None:
    serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"  # how WeChat Pay writes it in Wechatpay-Serial
    pay = WechatPay(replace(settings, platform_keys={serial.lower(): self_signed(platform_key, int(serial, 16))}),
                    clock=lambda: NOW)
    body = notify_body(transaction())

    assert pay.verify_notify(signed_headers(platform_key, body, serial=serial), body).amount_total_fen == 12_345


def test_notifies_verify_under_each_platform_key_while_they_rotate(
        settings: WechatPaySettings, platform_key: rsa.RSAPrivateKey) -> None:
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    old_serial, new_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", "PUB_KEY_ID_0119000001092026000000000000000002"
    pay = WechatPay(replace(settings, platform_keys={old_serial: self_signed(platform_key, int(old_serial, 16)),
                                                     new_serial: pem_public(new_key)}), clock=lambda: NOW)
    body = notify_body(transaction())

    assert pay.verify_notify(signed_headers(platform_key, body, serial=old_serial), body).out_trade_no
    assert pay.verify_notify(signed_headers(new_key, body, serial=new_serial), body).out_trade_no
    with pytest.raises(NotifyRejected, match="does not verify"):  # each serial names its own key, no other
        pay.verify_notify(signed_headers(new_key, body, serial=old_serial), body)
