"""Recharge notify routes: each channel's raw body and signature headers go to the member service, answered
in the channel's own format."""

from __future__ import annotations

import grpc
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2 as pb

from services.common.grpc_server import CODE_KEY

REJECTED = ((CODE_KEY, "NOTIFY_REJECTED"),)


def test_an_alipay_notify_passes_the_form_bytes_and_answers_plain_success(client: FlaskClient, clients) -> None:
    clients.member.HandleRechargeNotify.reply = pb.RechargeNotifyResponse(recharge_no="R1")
    raw = b"app_id=2021&sign=abc%2B%3D&total_amount=1.00"
    response = client.post("/api/v1/payments/alipay/notify", data=raw, content_type="application/x-www-form-urlencoded",
                           headers={"Cookie": "x=1"})
    assert (response.status_code, response.mimetype, response.get_data()) == (200, "text/plain", b"success")
    assert clients.member.HandleRechargeNotify.calls[0].message == pb.RechargeNotifyRequest(channel="alipay", body=raw)


def test_a_rejected_alipay_notify_answers_failure_and_an_outage_503(client: FlaskClient, clients, rpc_error) -> None:
    clients.member.HandleRechargeNotify.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad sign", REJECTED)
    rejected = client.post("/api/v1/payments/alipay/notify", data=b"a=1",
                           content_type="application/x-www-form-urlencoded")
    clients.member.HandleRechargeNotify.error = rpc_error(grpc.StatusCode.UNAVAILABLE, "down")
    down = client.post("/api/v1/payments/alipay/notify", data=b"a=1", content_type="application/x-www-form-urlencoded")
    assert [(r.status_code, r.get_data()) for r in (rejected, down)] == [(400, b"failure"), (503, b"failure")]


def test_wechat_recharge_and_bank_card_notifies_pass_their_signature_headers(client: FlaskClient, clients,
                                                                               rpc_error) -> None:
    clients.member.HandleRechargeNotify.reply = pb.RechargeNotifyResponse(recharge_no="R1")
    wechat = client.post("/api/v1/payments/wechat/recharge-notify", data=b'{"id": 1}', content_type="application/json",
                         headers={"Wechatpay-Signature": "sig", "Wechatpay-Serial": "S", "X-Other": "no"})
    card = client.post("/api/v1/payments/bankcard/notify", data=b'{"a": 1}', content_type="application/json",
                       headers={"X-Bankcard-Signature": "hex", "Wechatpay-Serial": "S"})
    clients.member.HandleRechargeNotify.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "stale", REJECTED)
    refused = client.post("/api/v1/payments/bankcard/notify", data=b"{}", content_type="application/json")

    sent = [call.message for call in clients.member.HandleRechargeNotify.calls]
    assert [(m.channel, m.body, dict(m.headers)) for m in sent[:2]] == [
        ("wechat", b'{"id": 1}', {"Wechatpay-Signature": "sig", "Wechatpay-Serial": "S"}),
        ("bank_card", b'{"a": 1}', {"X-Bankcard-Signature": "hex"})]
    assert [(r.status_code, r.get_json()) for r in (wechat, card, refused)] == [
        (200, {"code": "SUCCESS", "message": "成功"}), (200, {"code": "SUCCESS", "message": "OK"}),
        (400, {"code": "FAIL", "message": "stale"})]
