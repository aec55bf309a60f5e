"""After-sales routes a shopper calls: what is asked of the order service's AfterSaleService and what is answered."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import after_sale_pb2

from services.common.grpc_server import CODE_KEY

AT = Timestamp(seconds=1_795_000_000)
WITHDRAWN = after_sale_pb2.AfterSale(
    id=7, case_no="AS1", order_id=5, order_no="O5", user_id=42, type="refund_only", status="WITHDRAWN", reason="坏了",
    refund_fen=1999, created_at=AT, updated_at=AT,
    lines=[after_sale_pb2.AfterSaleLine(line_id=9, quantity=1, amount_fen=1999, sku_id=101, name="茶", spec="")],
    history=[after_sale_pb2.AfterSaleStep(status="REQUESTED", at=AT, actor="user:42", reason="坏了"),
             after_sale_pb2.AfterSaleStep(status="WITHDRAWN", at=AT, actor="user:42", reason="不退了")])


@pytest.fixture
def auth(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(user_id=42)


def test_withdrawing_passes_the_case_and_reason_and_answers_the_withdrawn_case(client: FlaskClient, clients,
                                                                                auth) -> None:
    clients.order.WithdrawAfterSale.reply = WITHDRAWN

    response = client.post("/api/v1/after-sales/7/withdraw", json={"reason": "不退了"}, headers=auth)

    assert response.status_code == 200, response.get_json()
    assert [call.message for call in clients.order.WithdrawAfterSale.calls] == [
        after_sale_pb2.WithdrawAfterSaleRequest(id=7, reason="不退了")]
    body = response.get_json()
    assert (body["status"], [step["status"] for step in body["history"]]) == ("WITHDRAWN", ["REQUESTED", "WITHDRAWN"])


def test_withdrawing_an_open_case_needs_no_reason_but_refuses_unknown_fields(client: FlaskClient, clients,
                                                                              auth) -> None:
    clients.order.WithdrawAfterSale.reply = WITHDRAWN

    bare = client.post("/api/v1/after-sales/7/withdraw", json={}, headers=auth)
    odd = client.post("/api/v1/after-sales/7/withdraw", json={"status": "REFUNDED"}, headers=auth)

    assert (bare.status_code, odd.status_code) == (200, 400)
    assert [call.message.reason for call in clients.order.WithdrawAfterSale.calls] == [""]


def test_withdrawing_a_case_past_its_point_of_return_is_a_409_with_its_status(client: FlaskClient, clients, auth,
                                                                               rpc_error) -> None:
    clients.order.WithdrawAfterSale.error = rpc_error(
        grpc.StatusCode.ABORTED, "an after-sales case in RETURN_SHIPPED cannot withdraw",
        ((CODE_KEY, "AFTER_SALE_STATE_CONFLICT"),
         ("mall-error-details", '{"status": "RETURN_SHIPPED", "action": "withdraw"}')))

    response = client.post("/api/v1/after-sales/7/withdraw", json={}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        409, {"status": "RETURN_SHIPPED", "action": "withdraw"})


def test_withdrawing_another_shoppers_case_is_a_404(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.order.WithdrawAfterSale.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such after-sales case",
                                                      ((CODE_KEY, "AFTER_SALE_NOT_FOUND"),))

    response = client.post("/api/v1/after-sales/7/withdraw", json={}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "AFTER_SALE_NOT_FOUND")


def test_the_withdraw_route_is_in_the_openapi_document_for_shoppers(client: FlaskClient) -> None:
    operation = client.get("/openapi.json").get_json()["paths"]["/api/v1/after-sales/{case_id}/withdraw"]["post"]

    assert operation["tags"] == ["after-sales"]
    assert "200" in operation["responses"] and "requestBody" in operation


@pytest.mark.parametrize("lines", [
    {"lines": [{"line_id": 9, "quantity": 1}], "line_ids": [9]},  # one unit, or all of them?
    {"lines": [{"line_id": 9, "quantity": 1}, {"line_id": 9, "quantity": 2}]}])
def test_a_case_naming_a_line_twice_is_a_400_and_nothing_is_opened(client: FlaskClient, clients, auth,
                                                                     lines: dict) -> None:
    response = client.post("/api/v1/orders/5/after-sales", json={"type": "refund_only", "reason": "坏了", **lines},
                           headers=auth)

    assert (response.status_code, clients.order.CreateAfterSale.calls) == (400, []), response.get_json()
    assert response.get_json()["error"]["code"] == "INVALID_REQUEST"
