"""Cancellation review and the refund notify: who may call, what is asked of the order service, what is answered."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from flask.testing import FlaskClient
from mall.order.v1 import order_pb2

from services.common.grpc_server import CODE_KEY
from tests.unit.gateway.test_order_routes import ORDER

REVIEW = "/api/v1/admin/orders/5/cancel-review"


def test_customer_service_and_admins_review_cancellations_shoppers_and_operators_may_not(
        client: FlaskClient, clients, bearer: Callable[..., dict[str, str]]) -> None:
    refunding = order_pb2.Order()
    refunding.CopyFrom(ORDER)
    refunding.status, refunding.refunded_fen = "REFUNDING", 3799
    clients.order.ReviewCancellation.reply = refunding
    for forbidden in (bearer(user_id=42), bearer(roles="operator", user_id=8)):
        assert client.post(REVIEW, json={"approve": True}, headers=forbidden).status_code == 403
    assert clients.order.ReviewCancellation.calls == []
    for reviewer in ("customer_service", "admin"):
        response = client.post(REVIEW, json={"approve": True, "reason": "同意"}, headers=bearer(roles=reviewer))
        assert (response.status_code, response.get_json()["status"], response.get_json()["refunded_fen"]) == (
            200, "REFUNDING", 3799)
    assert clients.order.ReviewCancellation.calls[0].message == order_pb2.ReviewCancellationRequest(
        id=5, approve=True, reason="同意")


def test_a_review_needs_the_decision_and_a_wrong_state_is_a_409_with_it(client: FlaskClient, clients, bearer,
                                                                         rpc_error) -> None:
    staff = bearer(roles="customer_service")
    assert client.post(REVIEW, json={"reason": "?"}, headers=staff).status_code == 400
    clients.order.ReviewCancellation.error = rpc_error(
        grpc.StatusCode.ABORTED, "an order in PAID cannot approve cancel",
        ((CODE_KEY, "ORDER_STATE_CONFLICT"), ("mall-error-details", '{"status": "PAID", "action": "approve_cancel"}')))
    response = client.post(REVIEW, json={"approve": True}, headers=staff)
    assert (response.status_code, response.get_json()["error"]["details"]["status"]) == (409, "PAID")


def test_the_refund_notify_passes_the_raw_bytes_and_answers_in_wechat_pays_format(client: FlaskClient, clients,
                                                                                   rpc_error) -> None:
    raw = b'{"id":"EV-2",  "resource":{}}'
    clients.order.HandleWechatRefundNotify.reply = order_pb2.WechatPayNotifyResponse()
    response = client.post("/api/v1/payments/wechat/refund-notify", data=raw, content_type="application/json",
                           headers={"Wechatpay-Serial": "PUB_KEY_ID_1", "Wechatpay-Signature": "sig"})
    assert (response.status_code, response.get_json()) == (200, {"code": "SUCCESS", "message": "成功"})
    sent = clients.order.HandleWechatRefundNotify.calls[0].message
    assert (sent.body, dict(sent.headers)) == (raw, {"Wechatpay-Serial": "PUB_KEY_ID_1", "Wechatpay-Signature": "sig"})
    clients.order.HandleWechatRefundNotify.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad GCM tag",
                                                             ((CODE_KEY, "NOTIFY_REJECTED"),))
    rejected = client.post("/api/v1/payments/wechat/refund-notify", data=raw, content_type="application/json")
    assert (rejected.status_code, rejected.get_json()) == (400, {"code": "FAIL", "message": "bad GCM tag"})


CLOSE = "/api/v1/admin/refunds/RF2026112912000000000012345678/close"


def test_only_admins_close_an_abnormal_refund_and_say_why(client: FlaskClient, clients, bearer) -> None:
    clients.order.CloseRefund.reply = ORDER
    for forbidden in (bearer(user_id=42), bearer(roles="customer_service", user_id=8),
                      bearer(roles="finance", user_id=9)):
        assert client.post(CLOSE, json={"reason": "卡已注销"}, headers=forbidden).status_code == 403
    assert client.post(CLOSE, json={}, headers=bearer(roles="admin")).status_code == 400
    assert client.post(CLOSE, json={"reason": ""}, headers=bearer(roles="admin")).status_code == 400
    assert clients.order.CloseRefund.calls == []

    response = client.post(CLOSE, json={"reason": "卡已注销,已线下转账"}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["id"]) == (200, ORDER.id)
    assert clients.order.CloseRefund.calls[0].message == order_pb2.CloseRefundRequest(
        refund_no="RF2026112912000000000012345678", reason="卡已注销,已线下转账")


def test_closing_a_refund_that_is_not_abnormal_is_a_409_with_its_status(client: FlaskClient, clients, bearer,
                                                                          rpc_error) -> None:
    clients.order.CloseRefund.error = rpc_error(
        grpc.StatusCode.ABORTED, "a SUCCESS refund cannot be closed (only ABNORMAL)",
        ((CODE_KEY, "REFUND_STATE_CONFLICT"), ("mall-error-details", '{"status": "SUCCESS", "action": "close"}')))
    response = client.post(CLOSE, json={"reason": "?"}, headers=bearer(roles="admin"))
    assert (response.status_code, response.get_json()["error"]["details"]) == (
        409, {"status": "SUCCESS", "action": "close"})


CANCEL_UNSHIPPED = "/api/v1/admin/orders/5/cancel-unshipped"


def test_refund_deciders_cancel_the_unshipped_units_with_a_reason_and_an_idempotency_key(
        client: FlaskClient, clients, bearer: Callable[..., dict[str, str]]) -> None:
    shipped = order_pb2.Order()
    shipped.CopyFrom(ORDER)
    shipped.status, shipped.refunded_fen = "SHIPPED", 1943
    clients.order.CancelUnshipped.reply = shipped
    body = {"reason": "白色停产", "shopper_reason": "白色已停产"}
    for forbidden in (bearer(user_id=42), bearer(roles="finance", user_id=9), bearer(roles="operator", user_id=8)):
        headers = {**forbidden, "Idempotency-Key": "cu-1"}
        assert client.post(CANCEL_UNSHIPPED, json=body, headers=headers).status_code == 403
    admin = bearer(roles="admin")
    assert client.post(CANCEL_UNSHIPPED, json=body, headers=admin).status_code == 400  # no Idempotency-Key
    for bad in ({}, {"reason": ""}, {"reason": "x", "shopper_reason": "长" * 201}):
        assert client.post(CANCEL_UNSHIPPED, json=bad, headers={**admin, "Idempotency-Key": "cu-1"}).status_code == 400
    assert clients.order.CancelUnshipped.calls == []

    for role in ("admin", "customer_service"):
        response = client.post(CANCEL_UNSHIPPED, json=body, headers={**bearer(roles=role), "Idempotency-Key": "cu-1"})
        assert (response.status_code, response.get_json()["status"], response.get_json()["refunded_fen"]) == (
            200, "SHIPPED", 1943)
    assert clients.order.CancelUnshipped.calls[0].message == order_pb2.CancelUnshippedRequest(
        id=5, reason="白色停产", shopper_reason="白色已停产", idempotency_key="cu-1")


def test_cancelling_the_unshipped_units_of_an_order_not_partly_shipped_is_a_409_with_its_state(
        client: FlaskClient, clients, bearer, rpc_error) -> None:
    clients.order.CancelUnshipped.error = rpc_error(
        grpc.StatusCode.ABORTED, "only a partly shipped order (PAID, with parcels) can have its unshipped units "
        "cancelled", ((CODE_KEY, "ORDER_STATE_CONFLICT"),
                      ("mall-error-details", '{"status": "SHIPPED", "action": "cancel_unshipped", "shipments": 2}')))
    response = client.post(CANCEL_UNSHIPPED, json={"reason": "缺货"},
                           headers={**bearer(roles="customer_service"), "Idempotency-Key": "cu-2"})
    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        409, "ORDER_STATE_CONFLICT", {"status": "SHIPPED", "action": "cancel_unshipped", "shipments": 2})


RETRY = "/api/v1/admin/refunds/LATE2026112912000000000012345678/retry"


def test_customer_service_and_admins_retry_a_refund_by_its_number_shoppers_operators_and_finance_may_not(
        client: FlaskClient, clients, bearer) -> None:
    clients.order.RetryRefund.reply = ORDER
    for forbidden in (bearer(user_id=42), bearer(roles="operator", user_id=8), bearer(roles="finance", user_id=9)):
        assert client.post(RETRY, headers=forbidden).status_code == 403
    assert clients.order.RetryRefund.calls == []

    for retrier in ("customer_service", "admin"):
        response = client.post(RETRY, headers=bearer(roles=retrier))
        assert (response.status_code, response.get_json()["id"]) == (200, ORDER.id)

    assert clients.order.RetryRefund.calls[0].message == order_pb2.RetryRefundRequest(
        refund_no="LATE2026112912000000000012345678")


def test_retrying_a_refund_wechat_pay_cannot_be_asked_about_is_a_503(client: FlaskClient, clients, bearer,
                                                                      rpc_error) -> None:
    clients.order.RetryRefund.error = rpc_error(grpc.StatusCode.UNAVAILABLE, "WeChat Pay gave no usable answer",
                                                ((CODE_KEY, "PAYMENT_CHANNEL_UNAVAILABLE"),))
    response = client.post(RETRY, headers=bearer(roles="admin"))
    assert (response.status_code, response.get_json()["error"]["code"]) == (503, "PAYMENT_CHANNEL_UNAVAILABLE")
