"""Staff's list of refunds (GET /admin/refunds): who may read it, the filters passed on, the page answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import order_pb2

from services.common.grpc_server import CODE_KEY, DETAILS_KEY

REFUNDS = "/api/v1/admin/refunds"
STARTED = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
ABNORMAL_SINCE = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)


def stamp(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


REFUND = order_pb2.RefundSummary(refund_no="RF20261206010000000000abcdef01", order_id=17,
                                 order_no="20261205230000000000abcdef00", source="after_sale:12", status="ABNORMAL",
                                 amount_fen=1899, channel="wechat", reason="茶叶受潮", actor="staff:7",
                                 created_at=stamp(STARTED), updated_at=stamp(ABNORMAL_SINCE))


def test_admins_customer_service_and_finance_read_the_list_operators_and_shoppers_may_not(
        client: FlaskClient, clients, bearer: Callable[..., dict[str, str]]) -> None:
    clients.order.ListRefunds.reply = order_pb2.ListRefundsResponse(refunds=[REFUND], total=41)
    for forbidden in (bearer(user_id=42), bearer(roles="operator", user_id=8)):
        assert client.get(REFUNDS, headers=forbidden).status_code == 403
    assert clients.order.ListRefunds.calls == []

    answers = [client.get(f"{REFUNDS}?page=3&page_size=20", headers=bearer(roles=role))
               for role in ("finance", "admin", "customer_service")]

    assert {answer.status_code for answer in answers} == {200}
    assert answers[0].get_json() == {"items": [{
        "refund_no": "RF20261206010000000000abcdef01", "order_id": 17, "order_no": "20261205230000000000abcdef00",
        "source": "after_sale:12", "status": "ABNORMAL", "amount_fen": 1899, "channel": "wechat", "reason": "茶叶受潮",
        "actor": "staff:7", "created_at": "2026-12-06T01:00:00Z", "updated_at": "2026-12-06T02:30:00Z",
        "points_returned": 0, "paid_after_close_at": None}],
        "page": 3, "page_size": 20, "total": 41}
    assert clients.order.ListRefunds.calls[0].message == order_pb2.ListRefundsRequest(offset=40, limit=20)


def test_a_refund_shows_the_points_it_gives_back(client: FlaskClient, clients, bearer) -> None:
    cancelled = order_pb2.RefundSummary(refund_no="RF20261206010000000000abcdef02", source="cancel_unshipped",
                                        status="SUCCESS", amount_fen=1800, channel="wechat", points_returned=200,
                                        created_at=stamp(STARTED), updated_at=stamp(ABNORMAL_SINCE))
    clients.order.ListRefunds.reply = order_pb2.ListRefundsResponse(refunds=[cancelled], total=1)

    item = client.get(REFUNDS, headers=bearer(roles="finance")).get_json()["items"][0]

    assert (item["amount_fen"], item["points_returned"]) == (1800, 200)


def test_a_closed_refund_wechat_pay_paid_after_all_says_when_in_utc(client: FlaskClient, clients, bearer) -> None:
    paid_after_close = order_pb2.RefundSummary(refund_no="RF20261206010000000000abcdef03", source="after_sale:12",
                                               status="CLOSED", amount_fen=1899, channel="wechat",
                                               created_at=stamp(STARTED), updated_at=stamp(ABNORMAL_SINCE),
                                               paid_after_close_at=stamp(datetime(2026, 12, 6, 3, 15, 7, tzinfo=UTC)))
    clients.order.ListRefunds.reply = order_pb2.ListRefundsResponse(refunds=[paid_after_close, REFUND], total=2)

    items = client.get(REFUNDS, headers=bearer(roles="finance")).get_json()["items"]

    assert [(item["status"], item["paid_after_close_at"]) for item in items] == [
        ("CLOSED", "2026-12-06T03:15:07Z"), ("ABNORMAL", None)]


def test_the_filters_reach_the_order_service_times_in_utc(client: FlaskClient, clients, bearer) -> None:
    response = client.get(f"{REFUNDS}?status=PENDING&source=late_payment&order_no=20261205230000000000abcdef00"
                          "&created_from=2026-12-06T00:00:00%2B08:00&created_to=2026-12-07T00:00:00%2B08:00"
                          "&page_size=100", headers=bearer(roles="finance"))

    assert (response.status_code, response.get_json()["page_size"]) == (200, 100)
    expected = order_pb2.ListRefundsRequest(status="PENDING", source="late_payment",
                                            order_no="20261205230000000000abcdef00", offset=0, limit=100)
    expected.created_from.FromDatetime(datetime(2026, 12, 5, 16, tzinfo=UTC))
    expected.created_to.FromDatetime(datetime(2026, 12, 6, 16, tzinfo=UTC))
    assert clients.order.ListRefunds.calls[0].message == expected


def test_bad_filters_and_page_sizes_are_400_naming_the_field_and_ask_nothing(client: FlaskClient, clients,
                                                                             bearer) -> None:
    for asked, field in (("status=LOST", "status"), ("order_no=12;drop", "order_no"),
                         ("created_from=yesterday", "created_from"), ("page_size=101", "page_size"),
                         ("page=0", "page")):
        response = client.get(f"{REFUNDS}?{asked}", headers=bearer(roles="admin"))
        error = response.get_json()["error"]
        assert (response.status_code, error["code"], list(error["details"])) == (400, "INVALID_REQUEST", [field])
    assert clients.order.ListRefunds.calls == []


def test_an_unknown_source_is_the_order_services_400_in_the_error_format(client: FlaskClient, clients, bearer,
                                                                        rpc_error) -> None:
    clients.order.ListRefunds.error = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "unknown refund source",
        ((CODE_KEY, "REFUND_SOURCE_INVALID"), (DETAILS_KEY, '{"source": "after_sale, ..."}')))

    response = client.get(f"{REFUNDS}?source=refund", headers=bearer(roles="customer_service"))

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["details"]) == (
        400, "REFUND_SOURCE_INVALID", {"source": "after_sale, ..."})
    assert clients.order.ListRefunds.calls[0].message.source == "refund"


def test_the_list_is_documented_with_the_roles_that_read_it(client: FlaskClient) -> None:
    operation = client.get("/openapi.json").get_json()["paths"][REFUNDS]["get"]

    assert set(operation["x-roles"]) == {"admin", "customer_service", "finance"}
    assert {parameter["name"] for parameter in operation["parameters"]} >= {
        "status", "source", "order_no", "created_from", "created_to", "page", "page_size"}


def test_the_documented_refunds_say_when_a_closed_one_was_paid_after_all_or_null(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    for model in ("RefundOut", "StaffOrderRefundOut"):
        field = schemas[model]["properties"]["paid_after_close_at"]
        assert ({"type": "string", "format": "date-time"} in field["anyOf"], {"type": "null"} in field["anyOf"]) == (
            True, True), model
        assert "paid after all" in field["description"]
        assert "paid_after_close_at" in schemas[model]["required"]
