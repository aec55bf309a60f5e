"""Cart, checkout, order, payment and notify routes: what is asked of the order service and what is answered."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import order_pb2

from services.common.errors import Conflict, DomainError
from services.common.grpc_server import CODE_KEY, to_grpc
from services.common.order_steps import STEP_KINDS, StepKind
from tests.unit.gateway.conftest import history_item

AT = Timestamp(seconds=1_795_000_000)
ORDER = order_pb2.Order(
    id=5, order_no="2026112912000000000000abcd1234", user_id=42, status="PENDING_PAYMENT",
    lines=[order_pb2.OrderLine(id=9, sku_id=101, product_id=10, name="茶", spec="规格:大", price_fen=1999, quantity=2)],
    address=order_pb2.Address(name="张三", phone="13800138000", province="浙江省", city="杭州市", district="西湖区",
                              detail="文三路1号"),
    amounts=order_pb2.Amounts(items_total_fen=3998, level_discount_fen=199, payable_fen=3799),
    pay_deadline=AT, created_at=AT, history=[order_pb2.Transition(status="PENDING_PAYMENT", at=AT, actor="user:42",
                                                                   reason="placed", shopper_visible=True,
                                                                   shopper_reason="placed", kind="placed")])


@pytest.fixture
def auth(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(user_id=42)


def test_adding_to_the_cart_sends_sku_and_quantity_and_answers_201(client: FlaskClient, clients, auth) -> None:
    clients.order.AddCartItem.reply = order_pb2.CartItem(id=1, sku_id=101, product_id=10, quantity=2, selected=True,
                                                         valid=True, stock_status="in_stock", price_fen=1999)
    response = client.post("/api/v1/cart/items", json={"sku_id": 101, "quantity": 2}, headers=auth)
    assert response.status_code == 201 and response.get_json()["price_fen"] == 1999
    assert clients.order.AddCartItem.calls[0].message == order_pb2.AddCartItemRequest(sku_id=101, quantity=2)


def test_the_cart_answers_each_line_as_the_order_service_gave_it_with_its_purchase_limit(
        client: FlaskClient, clients, auth) -> None:
    clients.order.ListCart.reply = order_pb2.Cart(selected_total_fen=2 * 1999, items=[
        order_pb2.CartItem(id=1, sku_id=101, product_id=10, name="T恤", spec="颜色:黑", price_fen=1999, quantity=2,
                           selected=True, valid=True, price_changed=True, stock_status="low", image="/media/t.jpg",
                           max_per_shopper=3),
        order_pb2.CartItem(id=2, sku_id=102, product_id=11, quantity=1)])  # off the shelf: the service's zeros

    response = client.get("/api/v1/cart", headers=auth)

    assert (response.status_code, response.get_json()) == (200, {"selected_total_fen": 3998, "items": [
        {"id": 1, "sku_id": 101, "product_id": 10, "name": "T恤", "spec": "颜色:黑", "price_fen": 1999, "quantity": 2,
         "selected": True, "valid": True, "price_changed": True, "stock_status": "low", "image": "/media/t.jpg",
         "max_per_shopper": 3},
        {"id": 2, "sku_id": 102, "product_id": 11, "name": "", "spec": "", "price_fen": 0, "quantity": 1,
         "selected": False, "valid": False, "price_changed": False, "stock_status": "unavailable", "image": "",
         "max_per_shopper": 0}]})


def test_a_client_price_is_refused_not_used(client: FlaskClient, clients, auth) -> None:
    response = client.post("/api/v1/cart/items", json={"sku_id": 101, "quantity": 1,
                                                       "price_fen": 1}, headers=auth)
    assert response.status_code == 400 and clients.order.AddCartItem.calls == []


def test_a_quantity_over_999_is_refused(client: FlaskClient, clients, auth) -> None:
    response = client.post("/api/v1/cart/items", json={"sku_id": 101, "quantity": 1000},
                           headers=auth)
    assert response.status_code == 400


def test_an_order_needs_an_idempotency_key(client: FlaskClient, clients, auth) -> None:
    response = client.post("/api/v1/orders", json={"sku_id": 101, "quantity": 2, "address_id": 7},
                           headers=auth)
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "IDEMPOTENCY_KEY_REQUIRED")
    assert clients.order.SubmitOrder.calls == []


def test_submitting_passes_the_key_and_answers_the_order_with_a_masked_phone(client: FlaskClient, clients,
                                                                             auth) -> None:
    clients.order.SubmitOrder.reply = ORDER
    response = client.post("/api/v1/orders", json={"sku_id": 101, "quantity": 2, "address_id": 7},
                           headers={**auth, "Idempotency-Key": "abc-1"})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["payable_fen"], body["address"]["phone"]) == ("PENDING_PAYMENT", 3799,
                                                                               "138****8000")
    assert body["history"] == [{"status": "PENDING_PAYMENT", "kind": "placed", "at": "2026-11-18T11:06:40Z",
                                "actor": "user:42", "reason": "placed"}]
    sent = clients.order.SubmitOrder.calls[0].message
    assert (sent.idempotency_key, sent.checkout.sku_id, sent.checkout.quantity) == ("abc-1", 101, 2)


def test_a_shopper_with_too_many_unpaid_orders_is_answered_409_with_the_count_and_the_limit(
        client: FlaskClient, clients, auth, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.order.SubmitOrder.error = rpc_error(*to_grpc(Conflict(  # as service._check_unpaid_orders refuses
        "TOO_MANY_UNPAID_ORDERS", "you have 5 orders awaiting payment: pay or cancel one first",
        details={"unpaid_orders": 5, "limit": 5})))
    response = client.post("/api/v1/orders", json={"sku_id": 101, "quantity": 2, "address_id": 7},
                           headers={**auth, "Idempotency-Key": "abc-1"})
    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["details"]) == (
        409, "TOO_MANY_UNPAID_ORDERS", {"unpaid_orders": 5, "limit": 5})


def test_the_11th_order_of_one_shopper_within_a_minute_is_refused_and_other_shoppers_go_on(
        client: FlaskClient, clients, bearer) -> None:  # type: ignore[no-untyped-def]
    clients.order.SubmitOrder.reply = ORDER

    def place(user_id: int, n: int, ip: str = "203.0.113.7"):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/orders", json={"sku_id": 101, "quantity": 1, "address_id": 7},
                           headers={**bearer(user_id=user_id), "Idempotency-Key": f"k-{user_id}-{n}"},
                           environ_base={"REMOTE_ADDR": ip})

    mine = [place(42, n, ip=f"198.51.100.{n}") for n in range(11)]  # from other addresses: counted per shopper
    theirs = place(43, 0)

    assert [r.status_code for r in mine] == [201] * 10 + [429]
    assert (mine[-1].get_json()["error"]["code"], theirs.status_code) == ("RATE_LIMITED", 201)
    assert len(clients.order.SubmitOrder.calls) == 11  # the refused one never reached the order service


def test_a_checkout_names_cart_lines_or_one_sku_not_both(client: FlaskClient, clients, auth) -> None:
    response = client.post("/api/v1/checkout/preview", json={"cart_item_ids": [1], "sku_id": 101, "quantity": 1,
                                                             "address_id": 7}, headers=auth)
    assert response.status_code == 400 and clients.order.QuoteCheckout.calls == []


def test_the_preview_answers_the_exact_amounts_and_my_usable_coupons(client: FlaskClient, clients, auth) -> None:
    clients.order.QuoteCheckout.reply = order_pb2.CheckoutQuote(
        lines=ORDER.lines, amounts=ORDER.amounts,
        usable_coupons=[order_pb2.UsableCoupon(id=3, name="满10减5", discount_fen=500, valid_to=AT)])
    response = client.post("/api/v1/checkout/preview", json={"sku_id": 101, "quantity": 2, "address_id": 7},
                           headers=auth)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["payable_fen"], body["level_discount_fen"]) == (3799, 199)
    assert body["usable_coupons"] == [{"id": 3, "name": "满10减5", "discount_fen": 500,
                                       "valid_to": "2026-11-18T11:06:40Z"}]
    assert clients.order.QuoteCheckout.calls[0].message == order_pb2.CheckoutRequest(sku_id=101, quantity=2,
                                                                                      address_id=7)


def test_a_preview_past_a_skus_free_units_is_a_422_naming_the_sku_as_submit(client: FlaskClient, clients, auth,
                                                                           rpc_error) -> None:
    # as service._lines refuses it, and the product service's reservation on submit
    refused = rpc_error(*to_grpc(DomainError("OUT_OF_STOCK", "not enough stock for one of the lines",
                                             details={"sku_id": 179})))
    clients.order.QuoteCheckout.error = clients.order.SubmitOrder.error = refused

    answers = [client.post("/api/v1/checkout/preview", json={"sku_id": 179, "quantity": 999, "address_id": 7},
                           headers=auth),
               client.post("/api/v1/orders", json={"sku_id": 179, "quantity": 999, "address_id": 7},
                           headers={**auth, "Idempotency-Key": "abc-1"})]

    assert [(a.status_code, a.get_json()["error"]["code"], a.get_json()["error"]["details"]) for a in answers] == [
        (422, "OUT_OF_STOCK", {"sku_id": 179})] * 2


def test_preview_lines_keep_the_ids_the_order_service_keys_them_on(client: FlaskClient, clients, auth) -> None:
    clients.order.QuoteCheckout.reply = order_pb2.CheckoutQuote(lines=[  # cart item ids 31 and 30
        order_pb2.OrderLine(id=31, sku_id=101, quantity=1), order_pb2.OrderLine(id=30, sku_id=102, quantity=1)])

    response = client.post("/api/v1/checkout/preview", json={"cart_item_ids": [31, 30], "address_id": 7},
                           headers=auth)

    assert [line["id"] for line in response.get_json()["lines"]] == [31, 30]


def test_another_users_order_is_a_404(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.order.GetOrder.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such order",
                                             ((CODE_KEY, "ORDER_NOT_FOUND"),))
    response = client.get("/api/v1/orders/5", headers=auth)
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")


def test_an_invalid_transition_is_a_409_with_the_current_state(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.order.CancelOrder.error = rpc_error(grpc.StatusCode.ABORTED, "an order in CANCELLED cannot cancel",
                                                ((CODE_KEY, "ORDER_STATE_CONFLICT"),
                                                 ("mall-error-details", '{"status": "CANCELLED", "action": "cancel"}')))
    response = client.post("/api/v1/orders/5/cancel", json={}, headers=auth)
    assert response.status_code == 409
    assert response.get_json()["error"]["details"] == {"status": "CANCELLED", "action": "cancel"}


def test_wechat_pay_answers_the_request_payment_parameters(client: FlaskClient, clients, auth) -> None:
    params = {"appId": "wx1", "timeStamp": "1", "nonceStr": "n", "package": "prepay_id=p", "signType": "RSA",
              "paySign": "s"}
    clients.order.PayOrder.reply = order_pb2.PayOrderResponse(channel="wechat", out_trade_no="N1",
                                                              wx_request_payment=params, status="PENDING_PAYMENT")
    response = client.post("/api/v1/orders/5/pay", json={"channel": "wechat"}, headers=auth)
    assert response.get_json() == {"channel": "wechat", "out_trade_no": "N1", "status": "PENDING_PAYMENT",
                                   "wx_request_payment": params}


def test_an_order_with_nothing_to_pay_answers_paid_with_no_channel(client: FlaskClient, clients, auth) -> None:
    clients.order.PayOrder.reply = order_pb2.PayOrderResponse(channel="none", out_trade_no="N1", status="PAID")
    response = client.post("/api/v1/orders/5/pay", json={"channel": "balance"}, headers=auth)
    assert (response.status_code, response.get_json()) == (200, {"channel": "none", "out_trade_no": "N1",
                                                                 "status": "PAID", "wx_request_payment": None})


def test_the_notify_passes_the_raw_bytes_and_wechatpay_headers_without_a_token(client: FlaskClient, clients) -> None:
    clients.order.HandleWechatPayNotify.reply = order_pb2.WechatPayNotifyResponse()
    raw = b'{"id":"EV-1",  "resource":{}}'
    response = client.post("/api/v1/payments/wechat/notify", data=raw, content_type="application/json",
                           headers={"Wechatpay-Serial": "PUB_KEY_ID_1", "Wechatpay-Signature": "sig",
                                    "Wechatpay-Timestamp": "1", "Wechatpay-Nonce": "n", "Cookie": "x=1"})
    assert (response.status_code, response.get_json()) == (200, {"code": "SUCCESS", "message": "成功"})
    sent = clients.order.HandleWechatPayNotify.calls[0].message
    assert sent.body == raw
    assert dict(sent.headers) == {"Wechatpay-Serial": "PUB_KEY_ID_1", "Wechatpay-Signature": "sig",
                                  "Wechatpay-Timestamp": "1", "Wechatpay-Nonce": "n"}


def test_a_rejected_notify_answers_400_fail_with_the_reason(client: FlaskClient, clients, rpc_error) -> None:
    clients.order.HandleWechatPayNotify.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                                                          "Wechatpay-Signature does not verify",
                                                          ((CODE_KEY, "NOTIFY_REJECTED"),))
    response = client.post("/api/v1/payments/wechat/notify", data=b"{}", content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"code": "FAIL",
                                                                 "message": "Wechatpay-Signature does not verify"})


def test_admin_order_search_needs_a_staff_role(client: FlaskClient, clients, bearer) -> None:
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)
    assert client.get("/api/v1/admin/orders", headers=bearer(user_id=42)).status_code == 403
    response = client.get("/api/v1/admin/orders?status=PENDING_PAYMENT&created_from=2026-11-01T00:00:00Z",
                          headers=bearer(roles="customer_service", user_id=7))
    assert (response.status_code, response.get_json()["total"]) == (200, 1)
    sent = clients.order.SearchOrders.calls[0].message
    assert (sent.statuses, sent.created_from.seconds, sent.HasField("created_to")) == (["PENDING_PAYMENT"],
                                                                                      1_793_491_200, False)


def test_each_line_of_my_orders_says_its_units_refunded_and_its_open_case(client: FlaskClient, clients,
                                                                           auth) -> None:
    order = order_pb2.Order()
    order.CopyFrom(ORDER)
    order.status = "COMPLETED"
    order.lines[0].refunded_quantity = 1
    order.lines.add(id=10, sku_id=102, product_id=11, name="杯", price_fen=500, quantity=3, open_case_id=7)
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(orders=[order], total=1)
    clients.order.GetOrder.reply = order

    listed = client.get("/api/v1/orders", headers=auth).get_json()["items"][0]["lines"]
    detail = client.get("/api/v1/orders/5", headers=auth).get_json()["lines"]

    assert [(line["id"], line["quantity"], line["refunded_quantity"], line["open_case_id"]) for line in listed] == [
        (9, 2, 1, None), (10, 3, 0, 7)]
    assert detail == listed


@pytest.mark.parametrize("query", ["status=CANCELLED&status=REFUNDED", "status=CANCELLED,REFUNDED",
                                   "status=CANCELLED&status=REFUNDED,CANCELLED"])
def test_my_orders_take_several_statuses_repeated_or_separated_by_commas(client: FlaskClient, clients, auth,
                                                                        query: str) -> None:
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)

    response = client.get(f"/api/v1/orders?{query}&page=2&page_size=5", headers=auth)

    assert (response.status_code, response.get_json()["total"]) == (200, 1)
    sent = clients.order.ListOrders.calls[0].message
    assert (set(sent.statuses), sent.status, sent.offset, sent.limit) == ({"CANCELLED", "REFUNDED"}, "", 5, 5)


def test_staff_search_takes_several_statuses_as_my_orders_do(client: FlaskClient, clients, bearer) -> None:
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)

    response = client.get("/api/v1/admin/orders?status=PAID,SHIPPED", headers=bearer(roles="customer_service"))

    assert response.status_code == 200 and clients.order.SearchOrders.calls[0].message.statuses == ["PAID", "SHIPPED"]


@pytest.mark.parametrize("query", ["status=CANCELLED&status=LOST", "status=CANCELLED,", "status=cancelled"])
def test_an_unknown_status_among_several_is_refused_naming_the_parameter(client: FlaskClient, clients, auth,
                                                                       query: str) -> None:
    response = client.get(f"/api/v1/orders?{query}", headers=auth)

    error = response.get_json()["error"]
    assert (response.status_code, error["code"]) == (400, "INVALID_REQUEST")
    assert [name.split(".")[0] for name in error["details"]] == ["status"]
    assert clients.order.ListOrders.calls == []


@pytest.mark.parametrize("value", ["482014", "1.5e9", "2026-11-01T00:00:00", "2026-11-01", "0001-01-01T00:00:00+05:00",
                                   "2026-13-01T00:00:00Z"])
def test_a_staff_search_takes_only_iso_8601_times_with_an_offset(client: FlaskClient, clients, bearer,
                                                                 value: str) -> None:
    for name in ("created_from", "created_to"):
        for path in ("/api/v1/admin/orders", "/api/v1/admin/after-sales"):
            response = client.get(path, query_string={name: value}, headers=bearer(roles="customer_service"))
            assert (response.status_code, response.get_json()["error"]["code"], list(
                response.get_json()["error"]["details"])) == (400, "INVALID_REQUEST", [name]), (path, name, value)
    assert (clients.order.SearchOrders.calls, clients.order.SearchAfterSales.calls) == ([], [])


@pytest.mark.parametrize("path", ["/api/v1/admin/orders", "/api/v1/admin/after-sales", "/api/v1/admin/refunds"])
def test_a_staff_search_window_must_end_after_it_starts(client: FlaskClient, clients, bearer, path: str) -> None:
    for created_to in ("2026-11-01T00:00:00Z", "2026-11-01T07:59:59+08:00"):  # the start itself, and before it
        response = client.get(path, query_string={"created_from": "2026-11-01T00:00:00Z", "created_to": created_to},
                              headers=bearer(roles="admin"))
        assert (response.status_code, response.get_json()["error"]["code"], list(
            response.get_json()["error"]["details"])) == (400, "INVALID_REQUEST", ["created_to"]), created_to
    assert (clients.order.SearchOrders.calls, clients.order.SearchAfterSales.calls, clients.order.ListRefunds.calls) \
        == ([], [], [])


def test_the_waybill_gives_shippers_the_full_receiver_phone_and_the_units_left(client: FlaskClient, clients, bearer,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    clients.order.GetWaybill.reply = order_pb2.Waybill(order_no=ORDER.order_no, receiver=ORDER.address, lines=[
        order_pb2.WaybillLine(line_id=9, name="茶", spec="规格:大", quantity=2, to_ship=2),
        order_pb2.WaybillLine(line_id=10, name="杯", spec="规格:小", quantity=3, to_ship=2)])
    with caplog.at_level("INFO", logger="gateway.routes.orders"):
        response = client.get("/api/v1/admin/orders/5/waybill", headers=bearer(roles="operator", user_id=7))

    assert response.status_code == 200
    assert response.get_json() == {
        "order_no": ORDER.order_no, "receiver_name": "张三", "receiver_phone": "13800138000", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "detail": "文三路1号",
        "lines": [{"line_id": 9, "name": "茶", "spec": "规格:大", "quantity": 2, "to_ship": 2},
                  {"line_id": 10, "name": "杯", "spec": "规格:小", "quantity": 3, "to_ship": 2}]}
    assert clients.order.GetWaybill.calls[0].message == order_pb2.GetWaybillRequest(id=5)
    [read] = [r.getMessage() for r in caplog.records if r.name == "gateway.routes.orders"]
    assert read == f"staff user 7 read the receiver of order {ORDER.order_no} for its waybill"
    assert "13800138000" not in caplog.text


@pytest.mark.parametrize("roles", ["", "customer_service", "finance"])
def test_only_shippers_read_a_waybill(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.get("/api/v1/admin/orders/5/waybill", headers=bearer(roles=roles, user_id=7))
    assert response.status_code == 403 and clients.order.GetWaybill.calls == []


def test_an_order_with_nothing_to_ship_has_no_waybill(client: FlaskClient, clients, bearer, rpc_error) -> None:
    clients.order.GetWaybill.error = rpc_error(*to_grpc(Conflict(  # as Order.units_to_ship refuses a PENDING_PAYMENT one
        "ORDER_STATE_CONFLICT", "a PENDING_PAYMENT order has nothing to ship", details={"status": "PENDING_PAYMENT"})))
    response = client.get("/api/v1/admin/orders/5/waybill", headers=bearer(roles="admin", user_id=1))
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "ORDER_STATE_CONFLICT")
    assert (response.get_json()["error"]["message"], response.get_json()["error"]["details"]) == (
        "a PENDING_PAYMENT order has nothing to ship", {"status": "PENDING_PAYMENT"})
    assert "13800138000" not in response.get_data(as_text=True)


def a_refunding_order() -> order_pb2.Order:
    """ORDER cancelled by its shopper, approved by staff with their words, its refund stuck and closed by staff."""
    order = order_pb2.Order()
    order.CopyFrom(ORDER)
    order.status = "REFUNDING"
    order.history.extend([
        order_pb2.Transition(status="CANCEL_REQUESTED", at=AT, actor="user:42", reason="拍错了", shopper_visible=True,
                             shopper_reason="拍错了", kind="cancel_requested"),
        order_pb2.Transition(status="REFUNDING", at=AT, actor="staff:7", reason="同意,客户来电",
                             shopper_visible=True, shopper_reason="cancellation approved", kind="cancel_approved"),
        order_pb2.Transition(status="REFUNDING", at=AT, actor="wechatpay", reason="refund RF1 ABNORMAL at WeChat Pay",
                             kind="refund_note"),
        order_pb2.Transition(status="REFUNDING", at=AT, actor="staff:1", reason="refund RF1 closed: 卡已注销",
                             kind="refund_note")])
    return order


def test_my_order_shows_every_status_change_with_what_i_am_told_and_no_staff_note(client: FlaskClient, clients,
                                                                                  auth) -> None:
    clients.order.GetOrder.reply = a_refunding_order()

    body = client.get("/api/v1/orders/5", headers=auth).get_json()

    assert [(step["status"], step["actor"], step["reason"]) for step in body["history"]] == [
        ("PENDING_PAYMENT", "user:42", "placed"), ("CANCEL_REQUESTED", "user:42", "拍错了"),
        ("REFUNDING", "staff", "cancellation approved")]
    assert set(body["history"][0]) == {"status", "kind", "at", "actor", "reason"}


def test_each_step_says_its_kind_to_the_shopper_and_to_staff(client: FlaskClient, clients, bearer, auth) -> None:
    clients.order.GetOrder.reply = a_refunding_order()

    mine = client.get("/api/v1/orders/5", headers=auth).get_json()
    theirs = client.get("/api/v1/admin/orders/5", headers=bearer(roles="customer_service", user_id=7)).get_json()

    assert [step["kind"] for step in mine["history"]] == ["placed", "cancel_requested", "cancel_approved"]
    assert [step["kind"] for step in theirs["history"]] == [
        "placed", "cancel_requested", "cancel_approved", "refund_note", "refund_note"]


def test_a_step_recorded_before_kinds_existed_says_none_rather_than_failing(client: FlaskClient, clients,
                                                                            auth) -> None:
    order = a_refunding_order()
    order.history[0].ClearField("kind")  # written by a pod of the release before, during the rollout
    clients.order.GetOrder.reply = order

    response = client.get("/api/v1/orders/5", headers=auth)

    assert (response.status_code, response.get_json()["history"][0]["kind"]) == (200, "")


def test_staff_calling_a_shoppers_order_route_get_the_shoppers_view_without_staff_ids(
        client: FlaskClient, clients, bearer) -> None:
    # The order service names every staff member to a staff caller; a shopper's route shows what the shopper sees.
    clients.order.GetOrder.reply = a_refunding_order()
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(orders=[a_refunding_order()], total=1)
    clients.order.ConfirmReceipt.reply = a_refunding_order()
    staff = bearer(roles="customer_service", user_id=7)

    answers = [client.get("/api/v1/orders/5", headers=staff), client.get("/api/v1/orders", headers=staff),
               client.post("/api/v1/orders/5/confirm-receipt", headers=staff)]

    histories = [answers[0].get_json()["history"], answers[1].get_json()["items"][0]["history"],
                 answers[2].get_json()["history"]]
    assert [step["actor"] for step in histories[0]] == ["user:42", "user:42", "staff"]
    assert histories[1] == histories[2] == histories[0]
    for answer in answers:
        assert "staff:" not in answer.get_data(as_text=True)


def test_a_step_the_order_service_does_not_mark_for_the_shopper_is_not_shown_to_them(client: FlaskClient, clients,
                                                                                      auth) -> None:
    mine = order_pb2.ListOrdersResponse(orders=[a_refunding_order()], total=1)
    del mine.orders[0].history[:]
    mine.orders[0].history.add(status="REFUNDING", at=AT, actor="staff:7", reason="内部备注")  # no audience: staff's
    clients.order.ListOrders.reply = mine

    body = client.get("/api/v1/orders", headers=auth).get_json()

    assert (body["total"], body["items"][0]["history"]) == (1, [])


def test_the_admin_view_shows_every_step_with_its_actor_reason_and_what_the_shopper_is_told(
        client: FlaskClient, clients, bearer) -> None:
    clients.order.GetOrder.reply = a_refunding_order()

    body = client.get("/api/v1/admin/orders/5", headers=bearer(roles="customer_service", user_id=7)).get_json()

    assert [(step["status"], step["actor"], step["reason"], step["shopper_visible"], step["shopper_reason"])
            for step in body["history"]] == [
        ("PENDING_PAYMENT", "user:42", "placed", True, "placed"), ("CANCEL_REQUESTED", "user:42", "拍错了", True, "拍错了"),
        ("REFUNDING", "staff:7", "同意,客户来电", True, "cancellation approved"),
        ("REFUNDING", "wechatpay", "refund RF1 ABNORMAL at WeChat Pay", False, ""),
        ("REFUNDING", "staff:1", "refund RF1 closed: 卡已注销", False, "")]


def test_every_staff_answer_with_an_order_is_the_admin_view(client: FlaskClient, clients, bearer) -> None:
    staff = bearer(roles="admin", user_id=1)
    for rpc in ("SearchOrders", "ShipOrder", "ReviewCancellation", "CloseRefund"):
        getattr(clients.order, rpc).reply = (order_pb2.ListOrdersResponse(orders=[a_refunding_order()], total=1)
                                             if rpc == "SearchOrders" else a_refunding_order())

    answers = [client.get("/api/v1/admin/orders", headers=staff).get_json()["items"][0],
               client.post("/api/v1/admin/orders/5/ship", json={"carrier": "SF", "tracking_no": "A1"},
                           headers=staff).get_json(),
               client.post("/api/v1/admin/orders/5/cancel-review", json={"approve": True}, headers=staff).get_json(),
               client.post("/api/v1/admin/refunds/RF2026112912000000000012345678/close", json={"reason": "卡已注销"},
                           headers=staff).get_json()]

    assert [(answer["history"][-1]["reason"], answer["history"][-1]["shopper_visible"]) for answer in answers] == [
        ("refund RF1 closed: 卡已注销", False)] * 4


@pytest.mark.parametrize("tracking_no", ["-", "---", "-SF100", "SF 100", "顺丰100", "S" * 65])
def test_a_parcel_or_return_parcel_whose_tracking_number_is_no_tracking_number_is_400_and_never_sent(
        client: FlaskClient, clients, bearer, tracking_no: str) -> None:
    shipped = client.post("/api/v1/admin/orders/5/ship", json={"carrier": "SF", "tracking_no": tracking_no},
                          headers=bearer(roles="operator", user_id=1))
    sent_back = client.post("/api/v1/after-sales/3/return-shipment", json={"carrier": "SF", "tracking_no": tracking_no},
                            headers=bearer())

    assert [(answer.status_code, answer.get_json()["error"]["code"]) for answer in (shipped, sent_back)] == [
        (400, "INVALID_REQUEST")] * 2
    assert (clients.order.ShipOrder.calls, clients.order.SubmitReturnShipment.calls) == ([], [])


def test_a_parcel_naming_a_line_twice_is_a_400_and_nothing_is_shipped(client: FlaskClient, clients, bearer) -> None:
    # The order service added the two up (3 units of line 9); opening an after-sales case refuses the same body.
    clients.order.ShipOrder.reply = a_refunding_order()
    response = client.post("/api/v1/admin/orders/5/ship", headers=bearer(roles="operator", user_id=1), json={
        "carrier": "SF", "tracking_no": "SF100",
        "lines": [{"line_id": 9, "quantity": 1}, {"line_id": 9, "quantity": 2}]})

    assert (response.status_code, len(clients.order.ShipOrder.calls)) == (400, 0)
    assert response.get_json()["error"]["code"] == "INVALID_REQUEST"


def test_the_openapi_document_gives_shoppers_their_steps_and_staff_every_step_with_its_audience(
        client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    assert {history_item(spec, "/api/v1/orders/{order_id}"),
            history_item(spec, "/api/v1/orders/{order_id}/cancel", "post")} == {"StepOut"}
    assert {history_item(spec, "/api/v1/admin/orders/{order_id}"),
            history_item(spec, "/api/v1/admin/orders/{order_id}/cancel-review", "post"),
            history_item(spec, "/api/v1/admin/refunds/{refund_no}/close", "post")} == {"StaffStepOut"}
    assert set(schemas["StepOut"]["properties"]) == {"status", "kind", "at", "actor", "reason"}
    assert {"shopper_visible", "shopper_reason"} <= set(schemas["StaffStepOut"]["properties"])
    assert "staff only" in schemas["StaffStepOut"]["properties"]["shopper_visible"]["description"]


LATER = Timestamp(seconds=1_795_003_600)


def an_order_with_refunds() -> order_pb2.Order:
    """ORDER paid from the wallet with a refund in each status, and one of a late WeChat Pay payment."""
    order = order_pb2.Order()
    order.CopyFrom(ORDER)
    order.status, order.pay_channel, order.refunded_fen = "PAID", "balance", 2998
    order.refunds.extend([
        order_pb2.OrderRefund(refund_no="RF2026112912000000000000000001", amount_fen=1999, points_returned=150,
                              status="SUCCESS", channel="balance", source="cancel_unshipped", created_at=AT,
                              updated_at=LATER),
        order_pb2.OrderRefund(refund_no="RF2026112912000000000000000002", amount_fen=999, status="PENDING",
                              channel="balance", source="after_sale:12", created_at=LATER, updated_at=LATER),
        order_pb2.OrderRefund(refund_no="RF2026112912000000000000000003", amount_fen=500, status="ABNORMAL",
                              channel="balance", source="after_sale:13", created_at=LATER, updated_at=LATER),
        order_pb2.OrderRefund(refund_no="RF2026112912000000000000000004", amount_fen=300, status="CLOSED",
                              channel="balance", source="after_sale:14", created_at=LATER, updated_at=LATER),
        order_pb2.OrderRefund(refund_no="LATE2026112912000000000000abcd1234", amount_fen=3799, status="PENDING",
                              channel="wechat", source="late_payment", created_at=LATER, updated_at=LATER)])
    return order


def test_my_order_lists_its_refunds_with_what_each_means_to_me_and_nothing_for_staff(
        client: FlaskClient, clients, auth) -> None:
    clients.order.GetOrder.reply = an_order_with_refunds()

    body = client.get("/api/v1/orders/5", headers=auth).get_json()

    later = "2026-11-18T12:06:40Z"
    assert (body["refunded_fen"], body["refunds"]) == (2998, [
        {"refund_no": "RF2026112912000000000000000001", "amount_fen": 1999, "points_returned": 150,
         "status": "refunded", "channel": "balance", "created_at": "2026-11-18T11:06:40Z", "updated_at": later},
        {"refund_no": "RF2026112912000000000000000002", "amount_fen": 999, "points_returned": 0,
         "status": "processing", "channel": "balance", "created_at": later, "updated_at": later},
        {"refund_no": "RF2026112912000000000000000003", "amount_fen": 500, "points_returned": 0,
         "status": "contact_support", "channel": "balance", "created_at": later, "updated_at": later},
        {"refund_no": "RF2026112912000000000000000004", "amount_fen": 300, "points_returned": 0,
         "status": "contact_support", "channel": "balance", "created_at": later, "updated_at": later},
        {"refund_no": "LATE2026112912000000000000abcd1234", "amount_fen": 3799, "points_returned": 0,
         "status": "processing", "channel": "wechat", "created_at": later, "updated_at": later}])
    assert clients.order.GetOrder.calls[0].message == order_pb2.GetOrderRequest(id=5)


def an_order_whose_closed_refunds_were_started_again() -> order_pb2.Order:
    """ORDER with a cancellation refund closed, then started again and paid; an after-sales case's refund closed twice
    and retried a third time, under way; and a closed refund of the unshipped units nobody started again."""
    order = order_pb2.Order()
    order.CopyFrom(ORDER)
    order.status, order.pay_channel = "REFUNDING", "wechat"

    def refund(number: int, status: str, source: str, amount_fen: int) -> order_pb2.OrderRefund:
        return order_pb2.OrderRefund(refund_no=f"RF202611291200000000000000000{number}", amount_fen=amount_fen,
                                     status=status, channel="wechat", source=source, created_at=AT, updated_at=LATER)
    order.refunds.extend([refund(1, "CLOSED", "cancel", 8299), refund(2, "CLOSED", "after_sale:12", 999),
                          refund(3, "CLOSED", "cancel_unshipped", 500), refund(4, "SUCCESS", "cancel", 8299),
                          refund(5, "CLOSED", "after_sale:12", 999), refund(6, "PENDING", "after_sale:12", 999)])
    return order


def test_a_closed_refund_started_again_by_a_later_one_is_not_shown_to_the_shopper(
        client: FlaskClient, clients, auth) -> None:
    clients.order.GetOrder.reply = an_order_whose_closed_refunds_were_started_again()

    body = client.get("/api/v1/orders/5", headers=auth).get_json()

    assert [(refund["refund_no"][-1], refund["status"], refund["amount_fen"]) for refund in body["refunds"]] == [
        ("3", "contact_support", 500), ("4", "refunded", 8299), ("6", "processing", 999)]


def test_staff_see_the_closed_refunds_a_later_one_started_again(client: FlaskClient, clients, bearer) -> None:
    clients.order.GetOrder.reply = an_order_whose_closed_refunds_were_started_again()

    body = client.get("/api/v1/admin/orders/5", headers=bearer(roles="customer_service", user_id=7)).get_json()

    assert [(refund["refund_no"][-1], refund["status"], refund["source"]) for refund in body["refunds"]] == [
        ("1", "CLOSED", "cancel"), ("2", "CLOSED", "after_sale:12"), ("3", "CLOSED", "cancel_unshipped"),
        ("4", "SUCCESS", "cancel"), ("5", "CLOSED", "after_sale:12"), ("6", "PENDING", "after_sale:12")]


def test_staff_calling_my_order_route_get_the_shoppers_refunds(client: FlaskClient, clients, bearer) -> None:
    clients.order.GetOrder.reply = an_order_with_refunds()

    response = client.get("/api/v1/orders/5", headers=bearer(roles="customer_service", user_id=7))

    text = response.get_data(as_text=True)
    assert [word for word in ("source", "after_sale:", "late_payment", "ABNORMAL", "CLOSED", "SUCCESS")
            if word in text] == []


def test_the_admin_order_lists_its_refunds_as_recorded_with_their_source(client: FlaskClient, clients,
                                                                        bearer) -> None:
    clients.order.GetOrder.reply = an_order_with_refunds()

    body = client.get("/api/v1/admin/orders/5", headers=bearer(roles="customer_service", user_id=7)).get_json()

    later = "2026-11-18T12:06:40Z"
    assert body["refunds"][0] == {
        "refund_no": "RF2026112912000000000000000001", "amount_fen": 1999, "points_returned": 150,
        "status": "SUCCESS", "channel": "balance", "source": "cancel_unshipped", "created_at": "2026-11-18T11:06:40Z",
        "updated_at": later, "paid_after_close_at": None}
    assert [(refund["refund_no"][:4], refund["status"], refund["source"], refund["amount_fen"])
            for refund in body["refunds"][1:]] == [
        ("RF20", "PENDING", "after_sale:12", 999), ("RF20", "ABNORMAL", "after_sale:13", 500),
        ("RF20", "CLOSED", "after_sale:14", 300), ("LATE", "PENDING", "late_payment", 3799)]


def test_staff_see_when_wechat_pay_paid_a_refund_closed_here_and_the_shopper_reply_does_not_carry_it(
        client: FlaskClient, clients, bearer, auth) -> None:
    order = an_order_with_refunds()
    order.refunds[3].paid_after_close_at.CopyFrom(Timestamp(seconds=1_795_007_200))  # RF...0004, CLOSED
    clients.order.GetOrder.reply = order

    staff = client.get("/api/v1/admin/orders/5", headers=bearer(roles="customer_service", user_id=7)).get_json()
    mine = client.get("/api/v1/orders/5", headers=auth).get_json()

    assert [(refund["refund_no"][-1], refund["status"], refund["paid_after_close_at"])
            for refund in staff["refunds"]] == [
        ("1", "SUCCESS", None), ("2", "PENDING", None), ("3", "ABNORMAL", None), ("4", "CLOSED", "2026-11-18T13:06:40Z"),
        ("4", "PENDING", None)]
    assert [refund for refund in mine["refunds"] if "paid_after_close_at" in refund] == []


def test_only_the_order_details_carry_refunds_not_lists_or_actions(client: FlaskClient, clients, bearer,
                                                                  auth) -> None:
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)
    clients.order.CancelOrder.reply = ORDER

    answers = [client.get("/api/v1/orders", headers=auth).get_json()["items"][0],
               client.get("/api/v1/admin/orders", headers=bearer(roles="admin", user_id=1)).get_json()["items"][0],
               client.post("/api/v1/orders/5/cancel", json={}, headers=auth).get_json()]

    assert ["refunds" in answer for answer in answers] == [False, False, False]


def test_the_openapi_document_gives_shoppers_refund_statuses_for_them_and_staff_the_recorded_ones(
        client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    def refund_schema(path: str) -> dict:
        reply = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        item = schemas[reply.rsplit("/", 1)[1]]["properties"]["refunds"]["items"]["$ref"]
        return schemas[item.rsplit("/", 1)[1]]

    mine, staff = refund_schema("/api/v1/orders/{order_id}"), refund_schema("/api/v1/admin/orders/{order_id}")
    assert set(mine["properties"]) == {"refund_no", "amount_fen", "points_returned", "status", "channel",
                                       "created_at", "updated_at"}
    assert mine["properties"]["status"]["enum"] == ["processing", "refunded", "contact_support"]
    assert set(staff["properties"]) == {*mine["properties"], "source", "paid_after_close_at"}
    assert staff["properties"]["status"]["enum"] == ["PENDING", "SUCCESS", "CLOSED", "ABNORMAL"]


def test_a_retried_refund_that_closed_after_wechat_pay_paid_the_one_it_retried_is_not_shown_to_the_shopper(
        client: FlaskClient, clients, auth) -> None:
    order = an_order_whose_closed_refunds_were_started_again()
    del order.refunds[5]  # the case's third refund: its second (5), the retry, closed last
    order.refunds[1].paid_after_close_at.CopyFrom(Timestamp(seconds=1_795_007_200))  # its first, paid after all
    clients.order.GetOrder.reply = order

    body = client.get("/api/v1/orders/5", headers=auth).get_json()

    assert [(refund["refund_no"][-1], refund["status"], refund["amount_fen"]) for refund in body["refunds"]] == [
        ("2", "refunded", 999), ("3", "contact_support", 500), ("4", "refunded", 8299)]


def test_a_closed_refund_wechat_pay_paid_after_all_is_refunded_to_the_shopper_even_when_started_again(
        client: FlaskClient, clients, auth) -> None:
    """The money of a refund closed here and paid by WeChat Pay after all is back with the shopper: refunded, not
    contact_support, and listed though a later refund of its source started it again (that one paid it twice)."""
    order = an_order_whose_closed_refunds_were_started_again()
    for closed in (order.refunds[0], order.refunds[4]):  # the cancellation's first, the case's second
        closed.paid_after_close_at.CopyFrom(Timestamp(seconds=1_795_007_200))
    clients.order.GetOrder.reply = order

    body = client.get("/api/v1/orders/5", headers=auth).get_json()

    assert [(refund["refund_no"][-1], refund["status"], refund["amount_fen"]) for refund in body["refunds"]] == [
        ("1", "refunded", 8299), ("3", "contact_support", 500), ("4", "refunded", 8299), ("5", "refunded", 999),
        ("6", "processing", 999)]
    assert [refund for refund in body["refunds"] if "paid_after_close_at" in refund] == []


def test_my_orders_by_number_asks_the_order_service_for_that_number(client: FlaskClient, clients, auth) -> None:
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)

    response = client.get("/api/v1/orders", query_string={"order_no": ORDER.order_no}, headers=auth)

    assert (response.status_code, [order["order_no"] for order in response.get_json()["items"]],
            response.get_json()["total"]) == (200, [ORDER.order_no], 1)
    assert clients.order.ListOrders.calls[0].message.order_no == ORDER.order_no


def test_a_malformed_order_number_is_a_400_and_never_asked(client: FlaskClient, clients, auth) -> None:
    response = client.get("/api/v1/orders", query_string={"order_no": "5' OR 1=1"}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"], list(
        response.get_json()["error"]["details"])) == (400, "INVALID_REQUEST", ["order_no"])
    assert clients.order.ListOrders.calls == []


@pytest.mark.parametrize("schema", ["StepOut", "StaffStepOut"])
def test_the_openapi_document_lists_every_step_kind_with_what_it_means(client: FlaskClient, schema: str) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    kind = schemas[schema]["properties"]["kind"]

    assert [step.value for step in StepKind if f"{step.value}: {STEP_KINDS[step]}" not in kind["description"]] == []
    enums = [schemas[option["$ref"].rsplit("/", 1)[1]]["enum"] for option in kind["anyOf"] if "$ref" in option]
    assert enums == [[step.value for step in StepKind]]  # an enum a client can generate code from, not free text
