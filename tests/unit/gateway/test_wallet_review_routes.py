"""Wallet charges left for staff: who may list and resolve them, what is asked of the order service, what is answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import order_pb2

from services.common.grpc_server import CODE_KEY

REVIEWS = "/api/v1/admin/wallet-reviews"
RESOLVE = "/api/v1/admin/wallet-reviews/3/resolve"
FLAGGED = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def stamp(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


REVIEW = order_pb2.WalletReview(id=3, order_id=17, order_no="20261207040000000000abcdef01", user_id=8,
                                amount_fen=3000, order_user_id=7, payable_fen=3000, problem="OTHER_USERS_WALLET",
                                status="OPEN", flagged_at=stamp(FLAGGED))


def test_finance_admins_and_customer_service_list_the_charges_oldest_first_shoppers_and_operators_may_not(
        client: FlaskClient, clients, bearer: Callable[..., dict[str, str]]) -> None:
    clients.order.ListWalletReviews.reply = order_pb2.ListWalletReviewsResponse(reviews=[REVIEW], total=21)
    for forbidden in (bearer(user_id=42), bearer(roles="operator", user_id=8)):
        assert client.get(REVIEWS, headers=forbidden).status_code == 403
    assert clients.order.ListWalletReviews.calls == []

    answers = [client.get(f"{REVIEWS}?status=OPEN&page=2&page_size=20", headers=bearer(roles=role))
               for role in ("finance", "admin", "customer_service")]

    assert {answer.status_code for answer in answers} == {200}
    assert answers[0].get_json() == {"items": [{
        "id": 3, "order_id": 17, "order_no": "20261207040000000000abcdef01", "user_id": 8, "amount_fen": 3000,
        "order_user_id": 7, "payable_fen": 3000, "problem": "OTHER_USERS_WALLET", "status": "OPEN",
        "flagged_at": "2026-12-07T04:00:00Z", "resolved_at": None, "resolved_by": "", "note": "", "refund_no": ""}],
        "page": 2, "page_size": 20, "total": 21}
    assert clients.order.ListWalletReviews.calls[0].message == order_pb2.ListWalletReviewsRequest(
        status="OPEN", offset=20, limit=20)


def test_an_unknown_status_filter_is_refused_before_the_order_service_is_asked(client: FlaskClient, clients,
                                                                                bearer) -> None:
    response = client.get(f"{REVIEWS}?status=LOST", headers=bearer(roles="finance"))

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, ["status"])
    assert clients.order.ListWalletReviews.calls == []


def test_only_finance_and_admins_resolve_a_charge_and_they_say_how_and_why(client: FlaskClient, clients,
                                                                           bearer) -> None:
    credited = order_pb2.WalletReview()
    credited.CopyFrom(REVIEW)
    credited.status, credited.refund_no, credited.resolved_by = "CREDITED", "LATEW20261207040000000000abcdef01", "staff:9"
    credited.note = "不是本人订单"
    credited.resolved_at.CopyFrom(stamp(FLAGGED.replace(hour=5)))
    clients.order.ResolveWalletReview.reply = credited
    body = {"resolution": "credit_back", "reason": "不是本人订单"}
    for forbidden in (bearer(user_id=42), bearer(roles="customer_service", user_id=8),
                      bearer(roles="operator", user_id=8)):
        assert client.post(RESOLVE, json=body, headers=forbidden).status_code == 403
    for bad in ({"resolution": "credit_back"}, {"resolution": "credit_back", "reason": ""},
                {"resolution": "refund", "reason": "?"}):
        assert client.post(RESOLVE, json=bad, headers=bearer(roles="finance")).status_code == 400
    assert clients.order.ResolveWalletReview.calls == []

    response = client.post(RESOLVE, json=body, headers=bearer(roles="finance", user_id=9))

    assert (response.status_code, response.get_json()["status"], response.get_json()["refund_no"],
            response.get_json()["resolved_at"]) == (200, "CREDITED", "LATEW20261207040000000000abcdef01",
                                                    "2026-12-07T05:00:00Z")
    assert clients.order.ResolveWalletReview.calls[0].message == order_pb2.ResolveWalletReviewRequest(
        id=3, resolution="credit_back", reason="不是本人订单")


def test_resolving_a_charge_resolved_otherwise_is_a_409_with_its_status(client: FlaskClient, clients, bearer,
                                                                        rpc_error) -> None:
    clients.order.ResolveWalletReview.error = rpc_error(
        grpc.StatusCode.ABORTED, "this review is already CREDITED",
        ((CODE_KEY, "WALLET_REVIEW_RESOLVED"), ("mall-error-details", '{"status": "CREDITED"}')))

    response = client.post(RESOLVE, json={"resolution": "handled", "reason": "线下已退"}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        409, "WALLET_REVIEW_RESOLVED", {"status": "CREDITED"})
