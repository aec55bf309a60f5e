"""WechatPay against the simulator: prepay, the signed encrypted notify to a real receiver, tampers, query, refunds."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common import wechatpay as wechatpay_module
from services.common.devbroker import free_port
from services.common.wechatpay import (
    NotifyRejected,
    PaymentNotice,
    Refund,
    WechatPay,
    WechatPayApiError,
    WechatPaySettings,
    WechatPayUnavailable,
)
from tests.fixtures.http import serving
from tests.fixtures.simulator import RunningSimulator
from tools.simulator import SimulatorConfig, dev_env
from tools.simulator.client import SimulatorClient
from tools.simulator.wechatpay import TAMPERS, ensure_dev_keys

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class NotifyReceiver:
    """The merchant's notify endpoint: verifies with WechatPay, answers 204 or 400 {"code": "FAIL"} as WeChat expects."""

    url: str
    notices: list[PaymentNotice | Refund] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


@pytest.fixture
def wechatpay(simulator: RunningSimulator) -> WechatPay:
    return WechatPay(simulator.wechatpay_settings())


@pytest.fixture
def receiver(wechatpay: WechatPay) -> Iterator[NotifyReceiver]:
    received = NotifyReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                if self.path == "/refund-notify":
                    received.notices.append(wechatpay.verify_refund_notify(dict(self.headers), body))
                else:
                    received.notices.append(wechatpay.verify_notify(dict(self.headers), body))
            except NotifyRejected as exc:
                received.rejections.append(exc.reason)
                payload = json.dumps({"code": "FAIL", "message": exc.reason}).encode()
                self.send_response(400)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        received.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield received


def new_trade_no() -> str:
    return "T" + secrets.token_hex(10)


def prepay(wechatpay: WechatPay, receiver: NotifyReceiver, out_trade_no: str, amount_fen: int = 12_345) -> str:
    return wechatpay.jsapi_prepay(out_trade_no=out_trade_no, description="MiniMall 订单", amount_fen=amount_fen,
                                  payer_openid="o-payer-1", notify_url=f"{receiver.url}/notify",
                                  time_expire=datetime.now(UTC) + timedelta(minutes=30))


def test_prepay_records_the_order_the_merchant_signed(simulator: RunningSimulator, wechatpay: WechatPay,
                                                      receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()

    prepay_id = prepay(wechatpay, receiver, out_trade_no, amount_fen=990)

    order = simulator.client.wechatpay_order(out_trade_no)
    assert (order["prepay_id"], order["amount"]["total"], order["notify_url"], order["trade_state"]) == (
        prepay_id, 990, f"{receiver.url}/notify", "NOTPAY")
    assert order["payer"] == {"openid": "o-payer-1"}


def test_a_paid_order_notifies_the_merchant_who_verifies_the_full_amount(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)

    delivery = simulator.client.wechatpay_pay(out_trade_no)

    assert delivery["notify_status"] == 204
    assert receiver.rejections == []
    [notice] = receiver.notices
    assert isinstance(notice, PaymentNotice)
    assert (notice.out_trade_no, notice.trade_state, notice.amount_total_fen, notice.payer_total_fen) == (
        out_trade_no, "SUCCESS", 12_345, 12_345)
    assert notice.transaction_id == delivery["transaction_id"]
    assert notice.success_time is not None and abs(datetime.now(UTC) - notice.success_time) < timedelta(minutes=1)


def test_the_notify_can_be_replayed_and_verifies_the_same(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)
    sent = simulator.client.wechatpay_pay(out_trade_no)["notify"]

    replayed = wechatpay.verify_notify(sent["headers"], sent["body"].encode())

    assert replayed == receiver.notices[0]


@pytest.mark.parametrize(("tamper", "reason"), [
    ("bad_signature", "Wechatpay-Signature does not verify"),
    ("tampered_body", "Wechatpay-Signature does not verify"),
    ("unknown_serial", "unknown Wechatpay-Serial"),
    ("stale_timestamp", "Wechatpay-Timestamp is not within"),
    ("bad_tag", "bad GCM tag"),
    ("wrong_mchid", "mchid does not match"),
    ("wrong_appid", "appid does not match"),
    ("wrong_currency", "currency 'USD'"),
])
def test_a_tampered_notify_is_rejected_and_the_order_stays_unpaid(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver, tamper: str, reason: str) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)

    delivery = simulator.client.wechatpay_pay(out_trade_no, tamper=tamper)

    assert delivery["notify_status"] == 400
    assert json.loads(delivery["notify_answer"])["code"] == "FAIL"
    assert receiver.notices == [] and len(receiver.rejections) == 1 and reason in receiver.rejections[0]
    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "NOTPAY"


def test_a_wrong_amount_notify_verifies_but_shows_the_other_amount(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no, amount_fen=500)

    simulator.client.wechatpay_pay(out_trade_no, tamper="wrong_amount")

    [notice] = receiver.notices
    assert isinstance(notice, PaymentNotice) and notice.amount_total_fen == 501  # the order service must refuse it


def test_every_tamper_is_covered() -> None:
    assert set(TAMPERS) == {"bad_signature", "tampered_body", "unknown_serial", "stale_timestamp", "bad_tag",
                            "wrong_mchid", "wrong_appid", "wrong_amount", "wrong_currency"}


def test_a_lost_notify_is_found_by_the_query(simulator: RunningSimulator, wechatpay: WechatPay,
                                             receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)
    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "NOTPAY"

    paid = simulator.client.wechatpay_pay(out_trade_no, notify=False)

    notice = wechatpay.query_by_out_trade_no(out_trade_no)
    assert receiver.notices == []
    assert (notice.trade_state, notice.transaction_id, notice.amount_total_fen) == (
        "SUCCESS", paid["transaction_id"], 12_345)


def test_querying_an_unknown_order_is_order_not_exist(wechatpay: WechatPay) -> None:
    with pytest.raises(WechatPayApiError) as raised:
        wechatpay.query_by_out_trade_no(new_trade_no())

    assert (raised.value.status, raised.value.code) == (404, "ORDER_NOT_EXIST")


def test_a_second_prepay_with_another_amount_is_refused(wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    first = prepay(wechatpay, receiver, out_trade_no)

    assert prepay(wechatpay, receiver, out_trade_no) == first
    with pytest.raises(WechatPayApiError) as raised:
        prepay(wechatpay, receiver, out_trade_no, amount_fen=1)
    assert raised.value.code == "INVALID_REQUEST"


def test_an_amount_beyond_a_32_bit_integer_of_fen_is_refused_as_wechat_pay_does(
        wechatpay: WechatPay, receiver: NotifyReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wechatpay_module, "AMOUNT_MAX_FEN", 2**40)  # past the adapter's own check, to the simulator
    prepay(wechatpay, receiver, new_trade_no(), amount_fen=2**31 - 1)

    with pytest.raises(WechatPayApiError) as raised:
        prepay(wechatpay, receiver, new_trade_no(), amount_fen=2**31)

    assert (raised.value.status, raised.value.code) == (400, "PARAM_ERROR")


def test_a_paid_order_cannot_be_prepaid_again(simulator: RunningSimulator, wechatpay: WechatPay,
                                              receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)

    with pytest.raises(WechatPayApiError) as raised:
        prepay(wechatpay, receiver, out_trade_no)

    assert (raised.value.status, raised.value.code) == (403, "ORDERPAID")


def test_a_request_signed_with_another_merchant_key_is_refused(simulator: RunningSimulator) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    impostor = WechatPay(replace(simulator.wechatpay_settings(), merchant_private_key_pem=other))

    with pytest.raises(WechatPayUnavailable, match="401 SIGN_ERROR"):
        impostor.query_by_out_trade_no(new_trade_no())


def test_a_refund_is_processing_then_its_notify_reports_success(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no, out_refund_no = new_trade_no(), "R" + secrets.token_hex(10)
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)

    refund = wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=2_345,
                              total_fen=12_345, reason="取消订单", notify_url=f"{receiver.url}/refund-notify")
    assert (refund.status, refund.refund_fen, wechatpay.query_refund(out_refund_no).status) == (
        "PROCESSING", 2_345, "PROCESSING")

    delivery = simulator.client.wechatpay_refund_complete(out_refund_no)

    assert delivery["notify_status"] == 204
    [notice] = receiver.notices
    assert isinstance(notice, Refund)
    assert (notice.out_refund_no, notice.out_trade_no, notice.status, notice.refund_fen, notice.total_fen) == (
        out_refund_no, out_trade_no, "SUCCESS", 2_345, 12_345)
    assert wechatpay.query_refund(out_refund_no).status == "SUCCESS"


def test_an_abnormal_refund_keeps_its_amount_and_the_merchant_may_still_complete_it(
        simulator: RunningSimulator, wechatpay: WechatPay, receiver: NotifyReceiver) -> None:
    out_trade_no, out_refund_no = new_trade_no(), "R" + secrets.token_hex(10)
    prepay(wechatpay, receiver, out_trade_no, amount_fen=1_000)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)
    wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=1_000, total_fen=1_000,
                     notify_url=f"{receiver.url}/refund-notify")

    simulator.client.wechatpay_refund_complete(out_refund_no, "ABNORMAL")
    assert simulator.client.wechatpay_order(out_trade_no)["refunded_fen"] == 1_000
    with pytest.raises(WechatPayApiError):
        wechatpay.refund(out_trade_no=out_trade_no, out_refund_no="R" + secrets.token_hex(10), refund_fen=1_000,
                         total_fen=1_000)
    simulator.client.wechatpay_refund_complete(out_refund_no, "SUCCESS")  # done in the merchant console

    assert [notice.status for notice in receiver.notices] == ["ABNORMAL", "SUCCESS"]
    assert wechatpay.query_refund(out_refund_no).status == "SUCCESS"


def test_refunds_beyond_the_paid_amount_are_refused(simulator: RunningSimulator, wechatpay: WechatPay,
                                                    receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no, amount_fen=1_000)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)
    wechatpay.refund(out_trade_no=out_trade_no, out_refund_no="R" + secrets.token_hex(10), refund_fen=600,
                     total_fen=1_000)

    with pytest.raises(WechatPayApiError) as raised:
        wechatpay.refund(out_trade_no=out_trade_no, out_refund_no="R" + secrets.token_hex(10), refund_fen=401,
                         total_fen=1_000)

    assert raised.value.code == "NOT_ENOUGH"


def test_a_repeated_refund_request_is_the_same_refund(simulator: RunningSimulator, wechatpay: WechatPay,
                                                      receiver: NotifyReceiver) -> None:
    out_trade_no, out_refund_no = new_trade_no(), "R" + secrets.token_hex(10)
    prepay(wechatpay, receiver, out_trade_no, amount_fen=1_000)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)

    first = wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=1_000, total_fen=1_000)
    again = wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=1_000, total_fen=1_000)

    assert again.refund_id == first.refund_id
    assert simulator.client.wechatpay_order(out_trade_no)["refunded_fen"] == 1_000


def test_a_tampered_refund_notify_is_rejected(simulator: RunningSimulator, wechatpay: WechatPay,
                                              receiver: NotifyReceiver) -> None:
    out_trade_no, out_refund_no = new_trade_no(), "R" + secrets.token_hex(10)
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)
    wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=100, total_fen=12_345,
                     notify_url=f"{receiver.url}/refund-notify")

    delivery = simulator.client.wechatpay_refund_complete(out_refund_no, tamper="bad_tag")

    assert delivery["notify_status"] == 400 and receiver.notices == []
    assert wechatpay.query_refund(out_refund_no).status == "PROCESSING"


def test_paying_an_order_past_its_time_expire_is_refused(simulator: RunningSimulator, wechatpay: WechatPay,
                                                         receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    wechatpay.jsapi_prepay(out_trade_no=out_trade_no, description="d", amount_fen=100, payer_openid="o-payer-1",
                           notify_url=f"{receiver.url}/notify", time_expire=datetime.now(UTC) - timedelta(seconds=1))

    with pytest.raises(requests.HTTPError):
        simulator.client.wechatpay_pay(out_trade_no)

    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "CLOSED"


def test_the_merchant_hook_gives_the_dev_account_and_the_platform_public_key(simulator: RunningSimulator) -> None:
    merchant = simulator.client.wechatpay_merchant()
    settings = simulator.wechatpay_settings()

    assert (merchant["mchid"], merchant["appid"], merchant["merchant_serial"]) == (
        settings.mchid, settings.appid, settings.merchant_serial)
    assert settings.platform_keys == {merchant["platform_serial"]: merchant["platform_public_key_pem"].encode()}


def test_the_dev_keys_are_generated_once_private_to_their_owner(tmp_path: Path) -> None:
    first = ensure_dev_keys(tmp_path / "keys")
    contents = {name: path.read_bytes() for name, path in first.items()}

    again = ensure_dev_keys(tmp_path / "keys")

    assert {name: path.read_bytes() for name, path in again.items()} == contents
    assert oct(first["merchant-private.pem"].stat().st_mode & 0o777) == "0o600"
    assert oct(first["platform-private.pem"].stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]  # no staging folder left behind


def test_a_closed_order_can_no_longer_be_paid(simulator: RunningSimulator, wechatpay: WechatPay,
                                              receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)

    wechatpay.close(out_trade_no)

    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "CLOSED"
    with pytest.raises(requests.HTTPError):
        simulator.client.wechatpay_pay(out_trade_no)
    assert receiver.notices == []


def test_closing_an_order_the_payer_already_paid_is_orderpaid(simulator: RunningSimulator, wechatpay: WechatPay,
                                                               receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)

    with pytest.raises(WechatPayApiError) as raised:
        wechatpay.close(out_trade_no)

    assert raised.value.code == "ORDERPAID"
    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "SUCCESS"


def test_the_simulator_process_and_a_service_share_the_dev_env_keys(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **dev_env(f"http://127.0.0.1:{port}", SimulatorConfig(wechatpay_key_dir=str(tmp_path / "k")))}
    process = subprocess.Popen([sys.executable, "-m", "tools.simulator", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = SimulatorClient(f"http://127.0.0.1:{port}", timeout_seconds=1)
    try:
        deadline = time.monotonic() + 20
        while not client.healthy():
            assert process.poll() is None and time.monotonic() < deadline, "the simulator did not come up"
            time.sleep(0.1)
        settings = WechatPaySettings.from_env("dev", env)
        assert settings is not None
        out_trade_no = new_trade_no()
        WechatPay(settings).jsapi_prepay(out_trade_no=out_trade_no, description="d", amount_fen=100,
                                         payer_openid="o-dev", notify_url="http://127.0.0.1:1/notify",
                                         time_expire=datetime.now(UTC) + timedelta(minutes=5))
        client.wechatpay_pay(out_trade_no, notify=False)

        assert WechatPay(settings).query_by_out_trade_no(out_trade_no).trade_state == "SUCCESS"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_a_rate_limited_refund_is_unavailable_and_took_nothing(simulator: RunningSimulator, wechatpay: WechatPay,
                                                                receiver: NotifyReceiver) -> None:
    out_trade_no, out_refund_no = new_trade_no(), "R" + secrets.token_hex(10)
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_pay(out_trade_no, notify=False)
    simulator.client.wechatpay_fail_next(429, "FREQUENCY_LIMITED", "频率超限")

    with pytest.raises(WechatPayUnavailable, match="429 FREQUENCY_LIMITED"):
        wechatpay.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=100, total_fen=12_345)

    with pytest.raises(WechatPayApiError) as unknown:
        wechatpay.query_refund(out_refund_no)
    assert unknown.value.code == "RESOURCE_NOT_EXISTS"
    assert simulator.client.wechatpay_order(out_trade_no)["refunded_fen"] == 0


def test_a_signed_refusal_carries_its_code_and_message(simulator: RunningSimulator, wechatpay: WechatPay,
                                                       receiver: NotifyReceiver) -> None:
    out_trade_no = new_trade_no()
    prepay(wechatpay, receiver, out_trade_no)
    simulator.client.wechatpay_fail_next(403, "NO_AUTH", "商户无权限")

    with pytest.raises(WechatPayApiError) as refused:
        wechatpay.query_by_out_trade_no(out_trade_no)

    assert (refused.value.status, refused.value.code, refused.value.message) == (403, "NO_AUTH", "商户无权限")
    assert wechatpay.query_by_out_trade_no(out_trade_no).trade_state == "NOTPAY"  # only the next call


def test_a_named_transfer_is_read_by_the_simulator_as_wechat_pay_reads_it(simulator: RunningSimulator,
                                                                          wechatpay: WechatPay) -> None:
    openid, no = f"o-{secrets.token_hex(6)}", f"W{secrets.token_hex(8)}"

    bill = wechatpay.transfer(out_bill_no=no, openid=openid, amount_fen=200_000, remark="r", user_name="欧阳·娜娜")

    assert bill.state == "WAIT_USER_CONFIRM"
    assert [(t["out_bill_no"], t["user_name"]) for t in simulator.client.wechatpay_transfers(openid)] == [
        (no, "欧阳·娜娜")]


def test_a_payee_name_encrypted_to_another_key_is_refused_and_nothing_is_transferred(
        simulator: RunningSimulator, wechatpay: WechatPay, monkeypatch: pytest.MonkeyPatch) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    encrypt = wechatpay_module.encrypt_sensitive
    monkeypatch.setattr(wechatpay_module, "encrypt_sensitive", lambda _key, text: encrypt(stranger, text))
    openid = f"o-{secrets.token_hex(6)}"

    with pytest.raises(WechatPayApiError) as refused:
        wechatpay.transfer(out_bill_no=f"W{secrets.token_hex(8)}", openid=openid, amount_fen=200_000, remark="r",
                           user_name="张三")

    assert (refused.value.status, refused.value.code) == (400, "PARAM_ERROR")
    assert simulator.client.wechatpay_transfers(openid) == []
