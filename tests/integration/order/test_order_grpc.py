"""The order service through a real gRPC server on PostgreSQL, WeChat Pay by the simulator."""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import grpc
import pytest
from mall.order.v1 import order_pb2

from services.common.errors import Conflict
from services.common.grpc_server import from_grpc
from services.common.wechatpay import WechatPay
from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import Order, OrderLine, new_order, price
from tests.fakes import HOME, paid_while_closing
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer

pytestmark = pytest.mark.integration

ALICE, BOB = 1, 2
BUY_TWO = order_pb2.CheckoutRequest(sku_id=101, quantity=2, address_id=7)


def submit(server: OrderServer, key: str = "key-1", checkout: order_pb2.CheckoutRequest = BUY_TWO,
           user_id: int = ALICE) -> order_pb2.Order:
    return server.stub.SubmitOrder(order_pb2.SubmitOrderRequest(checkout=checkout, idempotency_key=key),
                                   metadata=server.as_user(user_id))


def failure(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    status, code, _, _ = from_grpc(failed.value)
    return status, code


def test_cart_to_order_snapshots_prices_and_history_for_its_owner_only(server: OrderServer) -> None:
    alice = server.as_user(ALICE)
    item = server.stub.AddCartItem(order_pb2.AddCartItemRequest(sku_id=102, quantity=3), metadata=alice)
    assert server.stub.ListCart(order_pb2.ListCartRequest(), metadata=alice).selected_total_fen == 1500
    order = submit(server, checkout=order_pb2.CheckoutRequest(cart_item_ids=[item.id], address_id=7))
    assert (order.status, order.amounts.payable_fen, order.lines[0].price_fen) == ("PENDING_PAYMENT", 1500, 500)
    assert server.stub.ListCart(order_pb2.ListCartRequest(), metadata=alice).items == []
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=alice)
    assert read.address.province == "浙江省" and [step.status for step in read.history] == ["PENDING_PAYMENT"]
    assert failure(lambda: server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id),
                                                metadata=server.as_user(BOB))) == (grpc.StatusCode.NOT_FOUND,
                                                                                    "ORDER_NOT_FOUND")
    assert server.events("order-created") == 1 and server.events("cart-item-added") == 1


def test_a_replayed_submit_returns_the_first_order_and_another_body_under_the_key_is_aborted(
        server: OrderServer) -> None:
    first = submit(server)
    assert submit(server).id == first.id
    assert server.stock.available[101] == 8
    other = order_pb2.CheckoutRequest(sku_id=101, quantity=1, address_id=7)
    assert failure(lambda: submit(server, checkout=other)) == (grpc.StatusCode.ABORTED, "IDEMPOTENCY_KEY_REUSED")
    assert server.events("order-created") == 1


def test_a_replayed_submit_naming_its_cart_lines_in_another_order_returns_the_first_order(
        server: OrderServer) -> None:
    alice = server.as_user(ALICE)
    ids = [server.stub.AddCartItem(order_pb2.AddCartItemRequest(sku_id=sku, quantity=1), metadata=alice).id
           for sku in (101, 102)]
    first = submit(server, checkout=order_pb2.CheckoutRequest(cart_item_ids=ids, address_id=7))
    again = submit(server, checkout=order_pb2.CheckoutRequest(cart_item_ids=ids[::-1], address_id=7))
    assert again.id == first.id and server.events("order-created") == 1


def test_my_orders_filter_by_status_and_staff_search_sees_everyone(server: OrderServer) -> None:
    first = submit(server, "a")
    submit(server, "b")
    submit(server, "c", user_id=BOB, checkout=order_pb2.CheckoutRequest(sku_id=102, quantity=1,
                                                                     address_id=8))
    server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=first.id, reason="no"), metadata=server.as_user(ALICE))
    mine = server.stub.ListOrders(order_pb2.ListOrdersRequest(status="CANCELLED"), metadata=server.as_user(ALICE))
    assert [order.id for order in mine.orders] == [first.id] and mine.total == 1
    assert server.stub.ListOrders(order_pb2.ListOrdersRequest(), metadata=server.as_user(ALICE)).total == 2
    staff = server.stub.SearchOrders(order_pb2.SearchOrdersRequest(), metadata=server.as_user(9, "customer_service"))
    assert staff.total == 3
    assert failure(lambda: server.stub.SearchOrders(order_pb2.SearchOrdersRequest(),
                                                    metadata=server.as_user(ALICE))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")


def test_my_order_number_finds_my_order_and_another_shoppers_number_finds_nothing(server: OrderServer) -> None:
    mine = submit(server, "mine")
    theirs = submit(server, "theirs", user_id=BOB, checkout=order_pb2.CheckoutRequest(sku_id=102, quantity=1,
                                                                                      address_id=8))

    def found(order_no: str) -> tuple[list[int], int]:
        answer = server.stub.ListOrders(order_pb2.ListOrdersRequest(order_no=order_no), metadata=server.as_user(ALICE))
        return [order.id for order in answer.orders], answer.total

    assert (found(mine.order_no), found(theirs.order_no)) == (([mine.id], 1), ([], 0))


def paid_notify(server: OrderServer, simulator: RunningSimulator, tamper: str | None = None
                ) -> tuple[order_pb2.Order, order_pb2.WechatPayNotifyRequest]:
    order = submit(server, f"pay-{tamper}-{datetime.now(UTC).timestamp()}")
    started = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"),
                                   metadata=server.as_user(ALICE))
    assert started.wx_request_payment["package"].startswith("prepay_id=")
    assert started.wx_request_payment["signType"] == "RSA"
    sent = simulator.client.wechatpay_pay(started.out_trade_no, tamper=tamper)["notify"]
    return order, order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(), headers=sent["headers"])


def test_one_signed_notify_50_times_in_sequence_then_50_concurrently_pays_once(server: OrderServer,
                                                                               simulator: RunningSimulator) -> None:
    order, notify = paid_notify(server, simulator)
    for _ in range(50):
        server.stub.HandleWechatPayNotify(notify)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda _: server.stub.HandleWechatPayNotify(notify), range(50)))
    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert paid.status == "PAID" and [step.status for step in paid.history] == ["PENDING_PAYMENT", "PAID"]
    assert paid.pay_channel == "wechat"
    assert server.events("order-paid") == 1


def test_fifty_first_notifies_at_once_make_one_transition_and_one_order_paid(server: OrderServer,
                                                                              simulator: RunningSimulator) -> None:
    order, notify = paid_notify(server, simulator)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda _: server.stub.HandleWechatPayNotify(notify), range(50)))
    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert [step.status for step in paid.history] == ["PENDING_PAYMENT", "PAID"]
    assert server.events("order-paid") == 1


@pytest.mark.parametrize("tamper", ["bad_signature", "tampered_body", "unknown_serial", "stale_timestamp", "bad_tag",
                                    "wrong_mchid", "wrong_appid", "wrong_amount"])
def test_a_tampered_notify_is_rejected_and_changes_nothing(server: OrderServer, simulator: RunningSimulator,
                                                           tamper: str) -> None:
    order, notify = paid_notify(server, simulator, tamper)
    assert failure(lambda: server.stub.HandleWechatPayNotify(notify)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                           "NOTIFY_REJECTED")
    unpaid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert unpaid.status == "PENDING_PAYMENT" and server.events("order-paid") == 0


def test_balance_pays_at_once_and_an_unpaid_order_of_another_user_is_not_found(server: OrderServer) -> None:
    server.members.balance_fen = 5000
    order = submit(server)
    assert failure(lambda: server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"),
                                                metadata=server.as_user(BOB)))[0] == grpc.StatusCode.NOT_FOUND
    paid = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"),
                                metadata=server.as_user(ALICE))
    assert (paid.status, server.members.balance_fen, server.events("order-paid")) == ("PAID", 1002, 1)
    assert failure(lambda: server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=order.id),
                                                   metadata=server.as_user(BOB)))[0] == grpc.StatusCode.NOT_FOUND


def place(uow: Callable[[], SqlOrderUnitOfWork], order_no: str, now: datetime) -> Order:
    order = new_order(user_id=ALICE, order_no=order_no, lines=[OrderLine(101, 10, "茶", "", 1000, 1)], address=HOME,
                      amounts=price(1000), now=now, pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    return order


def test_my_cancelled_tab_pages_cancelled_and_refunded_orders_together_newest_first(
        server: OrderServer, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    start = datetime(2026, 11, 29, 12, tzinfo=UTC)
    for minute, status in enumerate(["CANCELLED", "PAID", "REFUNDED", "CANCELLED", "PENDING_PAYMENT", "REFUNDED"]):
        order = new_order(user_id=ALICE, order_no=f"N-{minute}", lines=[OrderLine(101, 10, "茶", "", 1000, 1)],
                          address=HOME, amounts=price(1000), now=start + timedelta(minutes=minute), pay_minutes=30)
        order.status = status
        with pg_uow() as tx:
            tx.orders.add(order)
            tx.commit()

    def page(offset: int, **given: object) -> tuple[list[str], int]:
        found = server.stub.ListOrders(order_pb2.ListOrdersRequest(offset=offset, limit=3, **given),  # type: ignore[arg-type]
                                       metadata=server.as_user(ALICE))
        return [order.order_no for order in found.orders], found.total

    assert page(0, statuses=["CANCELLED", "REFUNDED"]) == (["N-5", "N-3", "N-2"], 4)
    assert page(3, statuses=["CANCELLED", "REFUNDED"]) == (["N-0"], 4)
    assert page(0, statuses=["REFUNDED"], status="CANCELLED") == (["N-5", "N-3", "N-2"], 4)  # an older gateway's too
    assert page(0, status="PAID") == (["N-1"], 1)
    staff = server.stub.SearchOrders(order_pb2.SearchOrdersRequest(statuses=["PENDING_PAYMENT", "PAID"], limit=10),
                                     metadata=server.as_user(9, "customer_service"))
    assert ([order.order_no for order in staff.orders], staff.total) == (["N-4", "N-1"], 2)
    assert failure(lambda: page(0, statuses=["CANCELLED", "LOST"])) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                          "STATUS_INVALID")


def test_orders_round_trip_with_lines_address_and_history(uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    placed = place(uow, "N-1", now)
    service.cancel_order(uow(), user_id=ALICE, order_id=placed.id or 0, reason="why not", now=now)
    read = service.get_order(uow(), user_id=ALICE, order_id=placed.id or 0)
    assert (read.status, read.address, read.lines[0].name) == ("CANCELLED", HOME, "茶")
    assert [(step.status, step.reason) for step in read.history] == [("PENDING_PAYMENT", "placed"),
                                                                      ("CANCELLED", "why not")]
    assert read.pay_deadline == now + timedelta(minutes=30)


def test_two_timeout_schedulers_at_once_cancel_each_expired_order_exactly_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: object) -> None:
    now = datetime.now(UTC)
    for number in range(30):
        place(pg_uow, f"T-{number}", now - timedelta(hours=1))
    place(pg_uow, "T-fresh", now)
    expire = functools.partial(service.expire_orders, now=now, batch=7)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        cancelled = sum(pool.map(lambda _: sum(iter(lambda: expire(pg_uow()), 0)), range(4)))
    assert cancelled == 30
    page = service.search_orders(pg_uow(), service.OrderSearch(statuses=("CANCELLED",), limit=100))
    found, total = page.orders, page.total
    assert total == 30 and all(len(order.history) == 2 for order in found)
    assert service.search_orders(pg_uow(), service.OrderSearch(statuses=("PENDING_PAYMENT",))).total == 1


def test_a_lost_notify_is_found_by_reconciliation_and_pays_once(server: OrderServer, simulator: RunningSimulator,
                                                                 pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order = submit(server, "lost-notify")
    started = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"),
                                   metadata=server.as_user(ALICE))
    unpaid = submit(server, "never-paid")
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=unpaid.id, channel="wechat"),
                         metadata=server.as_user(ALICE))
    simulator.client.wechatpay_pay(started.out_trade_no, notify=False)
    wechat = WechatPay(simulator.wechatpay_settings())
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert service.reconcile_payments(pg_uow, wechat, now=later) == 1
    assert service.reconcile_payments(pg_uow, wechat, now=later) == 0
    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (paid.status, paid.history[-1].actor, server.events("order-paid")) == ("PAID", "reconciliation", 1)
    still = server.stub.GetOrder(order_pb2.GetOrderRequest(id=unpaid.id), metadata=server.as_user(ALICE))
    assert still.status == "PENDING_PAYMENT"


def test_prepaid_orders_left_unpaid_do_not_hide_a_newer_one_whose_notify_was_lost_from_reconciliation(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    left = [submit(server, f"left-unpaid-{number}") for number in range(4)]  # opened WeChat Pay, never paid
    order = submit(server, "paid-behind-them")
    for placed in (*left, order):
        server.stub.PayOrder(order_pb2.PayOrderRequest(id=placed.id, channel="wechat"), metadata=server.as_user(ALICE))
    simulator.client.wechatpay_pay(order.order_no, notify=False)
    wechat = WechatPay(simulator.wechatpay_settings())

    paid = service.reconcile_payments(pg_uow, wechat, now=datetime.now(UTC) + timedelta(minutes=2), batch=2)

    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (paid, read.status, read.history[-1].actor, server.events("order-paid")) == (1, "PAID", "reconciliation", 1)
    assert {server.stub.GetOrder(order_pb2.GetOrderRequest(id=placed.id), metadata=server.as_user(ALICE)).status
            for placed in left} == {"PENDING_PAYMENT"}


class HeldQueries:
    """WeChat Pay's payment query answering NOTPAY, the first query held until `release` is set (`inside` is set
    when it is held): a round under way."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.inside, self.release = threading.Event(), threading.Event()

    def query_by_out_trade_no(self, out_trade_no: str) -> SimpleNamespace:
        self.asked.append(out_trade_no)
        if len(self.asked) == 1:
            self.inside.set()
            assert self.release.wait(30), "the test never let the first round go on"
        return SimpleNamespace(trade_state="NOTPAY")


def test_a_replicas_reconciliation_round_while_another_is_under_way_asks_wechat_pay_nothing(
        server: OrderServer, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    placed = [submit(server, f"one-round-{number}") for number in range(3)]
    for order in placed:
        server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=server.as_user(ALICE))
    wechat, later = HeldQueries(), datetime.now(UTC) + timedelta(minutes=2)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(service.reconcile_payments, pg_uow, wechat, now=later, batch=2)  # type: ignore[arg-type]
        assert wechat.inside.wait(30)
        second = service.reconcile_payments(pg_uow, wechat, now=later, batch=2)  # type: ignore[arg-type]
        asked_meanwhile = list(wechat.asked)
        wechat.release.set()
        assert first.result(timeout=30) == 0

    every_order = [order.order_no for order in placed]
    assert (second, asked_meanwhile, wechat.asked) == (0, every_order[:1], every_order)  # each asked once
    assert service.reconcile_payments(pg_uow, wechat, now=later, batch=2) == 0  # type: ignore[arg-type]
    assert wechat.asked == every_order * 2  # the next round, the lock free again, reaches every order


def test_a_replicas_reconciliation_round_within_the_interval_of_the_last_asks_wechat_pay_nothing(
        server: OrderServer, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    placed = [submit(server, f"per-interval-{number}") for number in range(2)]
    for order in placed:
        server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=server.as_user(ALICE))
    wechat, later = HeldQueries(), datetime.now(UTC) + timedelta(minutes=2)
    wechat.release.set()  # no round is held here
    every_order = [order.order_no for order in placed]

    def round_at(seconds: int) -> int:  # each replica's timer, `seconds` after the first round
        return service.reconcile_payments(pg_uow, wechat, now=later + timedelta(seconds=seconds),  # type: ignore[arg-type]
                                          interval_seconds=60)

    assert (round_at(0), wechat.asked) == (0, every_order)  # NOTPAY
    assert (round_at(59), wechat.asked) == (0, every_order)  # another replica, within the interval: nothing asked
    assert (round_at(60), wechat.asked) == (0, every_order * 2)  # the interval over: every order asked again
    assert (round_at(119), wechat.asked) == (0, every_order * 2)


def test_paying_again_an_order_paid_at_wechat_pay_before_its_notify_takes_the_payment_once(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, notify = paid_notify(server, simulator)  # paid at WeChat Pay; the notify is still on its way
    pay = order_pb2.PayOrderRequest(id=order.id, channel="wechat")

    assert failure(lambda: server.stub.PayOrder(pay, metadata=server.as_user(ALICE))) == (
        grpc.StatusCode.ABORTED, "ORDER_ALREADY_PAID")
    server.stub.HandleWechatPayNotify(notify)

    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (paid.status, paid.pay_channel, server.events("order-paid")) == ("PAID", "wechat", 1)


def wechat_after_a_declined_wallet(server: OrderServer, key: str) -> tuple[order_pb2.Order, str]:
    """Alice opens WeChat Pay, tries her wallet instead (too little balance: declined, after the wallet attempt closed
    the WeChat Pay transaction under the order number), then pays with WeChat Pay after all: the order and the
    out_trade_no she is handed."""
    order, alice = submit(server, key), server.as_user(ALICE)
    first = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)
    assert first.out_trade_no == order.order_no
    server.members.balance_fen = 0
    assert failure(lambda: server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"),
                                                metadata=alice))[1] == "BALANCE_INSUFFICIENT"
    started = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)
    assert started.wx_request_payment["package"].startswith("prepay_id=")
    return order, started.out_trade_no


def test_wechat_pay_after_a_declined_wallet_closed_its_transaction_pays_the_order_once_under_its_next_number(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, out_trade_no = wechat_after_a_declined_wallet(server, "wechat-wallet-wechat")
    sent = simulator.client.wechatpay_pay(out_trade_no)["notify"]
    notify = order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(), headers=sent["headers"])

    for _ in range(3):
        server.stub.HandleWechatPayNotify(notify)

    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert out_trade_no == f"{order.order_no}_2"
    assert ([step.status for step in paid.history], paid.pay_channel, server.events("order-paid")) == (
        ["PENDING_PAYMENT", "PAID"], "wechat", 1)
    assert (simulator.client.wechatpay_order(order.order_no)["trade_state"],
            simulator.client.wechatpay_order(out_trade_no)["trade_state"]) == ("CLOSED", "SUCCESS")


def test_reconciliation_finds_the_lost_notify_of_an_orders_next_wechat_pay_transaction(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order, out_trade_no = wechat_after_a_declined_wallet(server, "next-number-lost-notify")
    simulator.client.wechatpay_pay(out_trade_no, notify=False)
    wechat = WechatPay(simulator.wechatpay_settings())
    later = datetime.now(UTC) + timedelta(minutes=2)

    assert [service.reconcile_payments(pg_uow, wechat, now=later) for _ in range(2)] == [1, 0]

    paid = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (paid.status, paid.history[-1].actor, server.events("order-paid")) == ("PAID", "reconciliation", 1)
    assert service.get_order(pg_uow(), user_id=None, order_id=order.id).out_trade_no == out_trade_no


def test_a_refund_of_an_order_paid_under_its_next_number_goes_to_that_transaction(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, out_trade_no = wechat_after_a_declined_wallet(server, "next-number-refund")
    sent = simulator.client.wechatpay_pay(out_trade_no)["notify"]
    server.stub.HandleWechatPayNotify(order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(),
                                                                       headers=sent["headers"]))
    server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=order.id, reason="买错了"), metadata=server.as_user(ALICE))

    approved = server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True,
                                                                                  reason="同意"),
                                              metadata=server.as_user(9, "customer_service"))

    payable = order.amounts.payable_fen
    assert (approved.status, approved.refunded_fen) == ("REFUNDING", payable)
    assert simulator.client.wechatpay_order(out_trade_no)["refunded_fen"] == payable  # WeChat Pay took the refund


def test_a_payment_under_an_earlier_number_of_an_order_paid_under_its_next_is_refunded_in_full_once(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order, alice = submit(server, "earlier-number-paid"), server.as_user(ALICE)
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)
    sent = simulator.client.wechatpay_pay(order.order_no)["notify"]  # its notify is late
    earlier = order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(), headers=sent["headers"])
    # WeChat Pay takes no payment under a closed number; this stands for one it reports anyway: the order has moved on
    # to its next number (as a wallet attempt that closed the first and charged nothing leaves it) and is paid there.
    with pg_uow() as tx:
        moved = tx.orders.get(order.id, lock=True)
        assert moved is not None
        moved.next_wechat_attempt()
        tx.commit()
    started = server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)
    sent = simulator.client.wechatpay_pay(started.out_trade_no)["notify"]
    server.stub.HandleWechatPayNotify(order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(),
                                                                       headers=sent["headers"]))

    for _ in range(3):
        server.stub.HandleWechatPayNotify(earlier)

    detail = service.get_order_detail(pg_uow(), user_id=None, order_id=order.id)
    payable = order.amounts.payable_fen
    assert (detail.order.status, detail.order.out_trade_no) == ("PAID", f"{order.order_no}_2")
    assert [(refund.refund_no, refund.source, refund.amount_fen) for refund in detail.refunds] == [
        (f"LATE{order.order_no}", "late_payment", payable)]
    assert simulator.client.wechatpay_order(order.order_no)["refunded_fen"] == payable
    assert simulator.client.wechatpay_order(started.out_trade_no)["refunded_fen"] == 0
    assert (server.events("order-paid"), server.events("late-payment-received")) == (1, 1)


def test_cancelling_closes_the_wechat_pay_transaction_first_and_finds_a_payment_made_just_before(
        server: OrderServer, simulator: RunningSimulator) -> None:
    paid, notify = paid_notify(server, simulator)  # paid at WeChat Pay; the notify is still on its way
    unpaid = submit(server, f"cancel-unpaid-{datetime.now(UTC).timestamp()}")
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=unpaid.id, channel="wechat"), metadata=server.as_user(ALICE))

    for order in (paid, unpaid):
        server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=order.id, reason="不想要了"),
                                metadata=server.as_user(ALICE))
    server.stub.HandleWechatPayNotify(notify)
    server.stub.HandleWechatPayNotify(notify)

    read = {order.order_no: server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id),
                                                 metadata=server.as_user(ALICE)) for order in (paid, unpaid)}
    assert [step.status for step in read[paid.order_no].history] == ["PENDING_PAYMENT", "PAID", "CANCEL_REQUESTED"]
    assert [step.status for step in read[unpaid.order_no].history] == ["PENDING_PAYMENT", "CANCELLED"]
    assert simulator.client.wechatpay_order(unpaid.order_no)["trade_state"] == "CLOSED"
    assert simulator.client.wechatpay_order(paid.order_no)["refunded_fen"] == 0  # refunded once staff approve
    assert (server.events("order-paid"), server.events("order-cancelled")) == (1, 1)


def test_the_timeout_closes_prepaid_orders_at_wechat_pay_and_pays_one_paid_just_before(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    paid_late, unpaid = submit(server, "paid-at-the-deadline"), submit(server, "left-unpaid")
    for order in (paid_late, unpaid):
        server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=server.as_user(ALICE))
    simulator.client.wechatpay_pay(paid_late.order_no, notify=False)  # paid, and the notify is still on its way
    wechat = WechatPay(simulator.wechatpay_settings())

    settled = service.expire_orders(pg_uow(), wechat=wechat, now=datetime.now(UTC) + timedelta(minutes=31))

    read = {order.order_no: server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id),
                                                 metadata=server.as_user(ALICE)) for order in (paid_late, unpaid)}
    assert settled == 2
    assert (read[paid_late.order_no].status, read[paid_late.order_no].history[-1].actor) == ("PAID", "system:timeout")
    assert (read[unpaid.order_no].status, read[unpaid.order_no].history[-1].actor) == ("CANCELLED", "system:timeout")
    assert simulator.client.wechatpay_order(unpaid.order_no)["trade_state"] == "CLOSED"
    assert (server.events("order-paid"), server.events("order-cancelled")) == (1, 1)


def test_a_cancel_racing_a_wechat_payment_that_opens_the_next_transaction_never_leaves_it_payable(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order, alice = submit(server, f"cancel-race-{datetime.now(UTC).timestamp()}"), server.as_user(ALICE)
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)
    handed: list[order_pb2.PayOrderResponse] = []
    wechat = paid_while_closing(WechatPay(simulator.wechatpay_settings()), lambda: handed.append(server.stub.PayOrder(
        order_pb2.PayOrderRequest(id=order.id, channel="wechat"), metadata=alice)))

    with pytest.raises(Conflict) as refused:
        service.cancel_order(pg_uow(), user_id=ALICE, order_id=order.id, reason="不想要了", wechat=wechat)

    following = f"{order.order_no}_2"
    assert (refused.value.code, [started.out_trade_no for started in handed]) == ("ORDER_STATE_CONFLICT", [following])
    assert server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=alice).status == "PENDING_PAYMENT"
    assert simulator.client.wechatpay_order(following)["trade_state"] == "NOTPAY"  # handed out, on an unpaid order

    cancelled = service.cancel_order(pg_uow(), user_id=ALICE, order_id=order.id, reason="不想要了", wechat=wechat)

    assert cancelled.status == "CANCELLED"
    assert [simulator.client.wechatpay_order(trade)["trade_state"] for trade in (order.order_no, following)] == [
        "CLOSED", "CLOSED"]
    assert (server.events("order-cancelled"), server.events("order-paid")) == (1, 0)


def test_an_order_of_a_sku_with_the_longest_spec_text_the_catalogue_allows_is_stored(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    # Found fuzzing the gateway: five specs of 20-character names and 50-character values make a line's spec text
    # "名:值;..." 359 characters; PostgreSQL refused the order (400 VALUE_NOT_STORABLE), so the SKU could not be bought.
    spec = ";".join(f"{chr(0x4E00 + i) * 20}:{'值' * 50}" for i in range(5))
    order = new_order(user_id=ALICE, order_no="N-SPEC", lines=[OrderLine(101, 10, "茶", spec, 1000, 1)], address=HOME,
                      amounts=price(1000), now=datetime(2026, 12, 7, tzinfo=UTC), pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()

    read = service.get_order(uow(), user_id=ALICE, order_id=order.id or 0)
    assert len(read.lines[0].spec) == 359
