"""Payment channels' notifies of wallet recharges: WeChat Pay v3, Alipay and the bank-card channel.

Each channel has its own URL and answers in its own format; the body goes to the member service
untouched (every signature covers the exact bytes), which verifies it and credits the recharge once.
WeChat Pay notifies recharges at /payments/wechat/recharge-notify (the prepay names that URL), apart
from the orders' /payments/wechat/notify, so neither service has to guess whose out_trade_no it is.
"""

from __future__ import annotations

import grpc
from flask import Blueprint, request
from mall.member.v1 import member_pb2 as pb
from mall.member.v1.member_pb2_grpc import MemberServiceStub

from gateway.api import PUBLIC, PlainText, operation, service
from gateway.routes.orders import NOTIFY_HEADERS, NotifyAnswer
from services.common.bankcard import SIGNATURE_HEADER
from services.common.grpc_server import from_grpc

bp = Blueprint("payments", __name__, url_prefix="/api/v1/payments")


def _notify(channel: str, headers: tuple[str, ...]) -> tuple[bool, str, int]:
    """(accepted, reason, status): 400 for a notify the member service rejected, 503 when it did not answer."""
    sent = {name: request.headers[name] for name in headers if name in request.headers}
    try:
        service(MemberServiceStub).HandleRechargeNotify(pb.RechargeNotifyRequest(
            channel=channel, body=request.get_data(cache=True), headers=sent))
    except grpc.RpcError as exc:
        status, _, message, _ = from_grpc(exc)
        if status == grpc.StatusCode.INVALID_ARGUMENT:
            return False, message, 400
        return False, "temporarily unavailable", 503
    return True, "", 200


@bp.post("/wechat/recharge-notify")
@operation(summary="WeChat Pay notify of a wallet recharge (signed by WeChat Pay; raw JSON body)", tag="payments",
           access=PUBLIC, responses={200: NotifyAnswer, 400: NotifyAnswer, 503: NotifyAnswer})
def wechat_recharge_notify() -> tuple[NotifyAnswer, int]:
    accepted, reason, status = _notify("wechat", NOTIFY_HEADERS)
    return (NotifyAnswer(code="SUCCESS", message="成功") if accepted else NotifyAnswer(code="FAIL", message=reason)), status


@bp.post("/alipay/notify")
@operation(summary="Alipay notify of a wallet recharge (form-encoded, RSA2-signed); answers `success`",
           tag="payments", access=PUBLIC, responses={200: PlainText, 400: PlainText, 503: PlainText},
           description="Any answer but `success` makes Alipay notify again.")
def alipay_notify() -> tuple[PlainText, int]:
    accepted, _, status = _notify("alipay", ())
    return PlainText(text="success" if accepted else "failure"), status


@bp.post("/bankcard/notify")
@operation(summary="Bank-card channel callback of a wallet recharge (JSON, HMAC-SHA256 in X-Bankcard-Signature)",
           tag="payments", access=PUBLIC, responses={200: NotifyAnswer, 400: NotifyAnswer, 503: NotifyAnswer})
def bankcard_notify() -> tuple[NotifyAnswer, int]:
    accepted, reason, status = _notify("bank_card", (SIGNATURE_HEADER,))
    return (NotifyAnswer(code="SUCCESS", message="OK") if accepted else NotifyAnswer(code="FAIL", message=reason)), status
