"""Staff's list of refunds: those needing staff first, the filters, the 400s and who may read it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Forbidden, InvalidInput
from services.order import refunds
from services.order.domain import Order, Refund
from services.order.grpc_api import OrderServicer
from services.order.uow import RefundSearch
from tests.unit.order.conftest import NOW, Shop, paid_order

HOUR = timedelta(hours=1)


def put(shop: Shop, order: Order, number: int, status: str, *, source: str = "cancel", started: timedelta,
        changed: timedelta, amount_fen: int = 100, points_returned: int = 0) -> str:
    """A refund of `order` started `started` before NOW and last changed `changed` before NOW."""
    refund_no = f"RF{number:020d}abcdef{number:02d}"
    shop.uow.refunds.add(Refund(refund_no=refund_no, order_id=order.id or 0, source=source, status=status,
                                amount_fen=amount_fen, channel="wechat", reason="why", actor="staff:7",
                                created_at=NOW - started, updated_at=NOW - changed, points_returned=points_returned))
    return refund_no


@pytest.fixture
def listed(shop: Shop) -> dict[str, str]:
    """Refunds of two orders in every status, put in an order the list must not keep."""
    first, second = paid_order(shop, (101, 1), key="a"), paid_order(shop, (102, 1), key="b")
    return {
        "success_old": put(shop, first, 1, "SUCCESS", started=9 * HOUR, changed=8 * HOUR),
        "pending_recent": put(shop, first, 2, "PENDING", started=HOUR, changed=HOUR, source="after_sale:12"),
        "abnormal_recent": put(shop, second, 3, "ABNORMAL", started=7 * HOUR, changed=2 * HOUR),
        "closed_new": put(shop, second, 4, "CLOSED", started=3 * HOUR, changed=3 * HOUR, source="late_payment"),
        "pending_stuck": put(shop, second, 5, "PENDING", started=6 * HOUR, changed=5 * HOUR,
                             source="after_sale:3"),
        "abnormal_old": put(shop, first, 6, "ABNORMAL", started=4 * HOUR, changed=4 * HOUR,
                            source="cancel_unshipped", points_returned=200),
    }


def numbers(shop: Shop, **search: object) -> list[str]:
    found, _ = refunds.list_refunds(shop.uow, RefundSearch(**search))  # type: ignore[arg-type]
    return [item.refund.refund_no for item in found]


def test_abnormal_then_pending_refunds_come_first_longest_waiting_first_then_the_ended_newest_first(
        shop: Shop, listed: dict[str, str]) -> None:
    assert numbers(shop) == [listed[name] for name in (
        "abnormal_old", "abnormal_recent", "pending_stuck", "pending_recent", "closed_new", "success_old")]


def test_pages_split_that_order_and_the_total_counts_every_match(shop: Shop, listed: dict[str, str]) -> None:
    found, total = refunds.list_refunds(shop.uow, RefundSearch(offset=2, limit=2))

    assert ([item.refund.refund_no for item in found], total) == (
        [listed["pending_stuck"], listed["pending_recent"]], 6)


def test_each_listed_refund_carries_its_orders_number(shop: Shop, listed: dict[str, str]) -> None:
    found, _ = refunds.list_refunds(shop.uow, RefundSearch(status="ABNORMAL"))

    orders = {order.id: order.order_no for order in shop.uow.orders.orders}
    assert [(item.refund.refund_no, item.order_no) for item in found] == [
        (listed["abnormal_old"], orders[1]), (listed["abnormal_recent"], orders[2])]


def test_filters_by_status_source_order_and_start_time(shop: Shop, listed: dict[str, str]) -> None:
    second_order_no = shop.uow.orders.orders[1].order_no

    assert numbers(shop, status="PENDING") == [listed["pending_stuck"], listed["pending_recent"]]
    assert numbers(shop, source="after_sale") == [listed["pending_stuck"], listed["pending_recent"]]
    assert numbers(shop, source="after_sale:3") == [listed["pending_stuck"]]
    assert numbers(shop, source="late_payment") == [listed["closed_new"]]
    assert numbers(shop, order_no=second_order_no) == [
        listed["abnormal_recent"], listed["pending_stuck"], listed["closed_new"]]
    assert numbers(shop, created_from=NOW - 6 * HOUR, created_to=NOW - HOUR) == [
        listed["abnormal_old"], listed["pending_stuck"], listed["closed_new"]]


@pytest.mark.parametrize(("search", "code"), [
    (RefundSearch(status="abnormal"), "STATUS_INVALID"),
    (RefundSearch(source="after_sales"), "REFUND_SOURCE_INVALID"),
    (RefundSearch(source="after_sale:"), "REFUND_SOURCE_INVALID"),
    (RefundSearch(source="after_sale:x"), "REFUND_SOURCE_INVALID"),
    (RefundSearch(source="cancel:1"), "REFUND_SOURCE_INVALID"),
])
def test_an_unknown_status_or_source_is_refused(shop: Shop, search: RefundSearch, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        refunds.list_refunds(shop.uow, search)

    assert refused.value.code == code


def as_caller(role: str) -> Caller:
    return Caller(user_id=8, roles=frozenset(filter(None, [role])), token_id="t", token="x")


def servicer(shop: Shop) -> OrderServicer:
    return OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)


@pytest.mark.parametrize("role", ["operator", ""])
def test_operators_and_shoppers_may_not_list_refunds(shop: Shop, listed: dict[str, str], role: str) -> None:
    token = caller_var.set(as_caller(role))
    try:
        with pytest.raises(Forbidden):
            servicer(shop).ListRefunds(order_pb2.ListRefundsRequest(), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)


@pytest.mark.parametrize("role", ["finance", "customer_service", "admin"])
def test_finance_customer_service_and_admins_list_refunds_with_what_staff_need(
        shop: Shop, listed: dict[str, str], role: str) -> None:
    token = caller_var.set(as_caller(role))
    try:
        answer = servicer(shop).ListRefunds(order_pb2.ListRefundsRequest(status="ABNORMAL", limit=1),
                                            None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    first = answer.refunds[0]
    assert (answer.total, len(answer.refunds)) == (2, 1)
    assert (first.refund_no, first.order_id, first.order_no, first.source, first.status, first.amount_fen,
            first.channel, first.reason, first.actor, first.points_returned) == (
        listed["abnormal_old"], 1, shop.uow.orders.orders[0].order_no, "cancel_unshipped", "ABNORMAL", 100,
        "wechat", "why", "staff:7", 200)
    assert (first.created_at.ToDatetime().isoformat(), first.updated_at.ToDatetime().isoformat()) == (
        "2026-11-29T08:00:00", "2026-11-29T08:00:00")


def test_a_closed_refund_wechat_pay_paid_after_all_says_when_in_the_list_and_the_others_leave_it_unset(
        shop: Shop, listed: dict[str, str]) -> None:
    closed = shop.uow.refunds.get(listed["closed_new"])
    assert closed is not None
    closed.paid_after_close_at = NOW - HOUR
    token = caller_var.set(as_caller("finance"))
    try:
        answer = servicer(shop).ListRefunds(order_pb2.ListRefundsRequest(), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert [(refund.status, refund.paid_after_close_at.ToDatetime().isoformat())
            for refund in answer.refunds if refund.HasField("paid_after_close_at")] == [
        ("CLOSED", "2026-11-29T11:00:00")]
    assert sum(not refund.HasField("paid_after_close_at") for refund in answer.refunds) == 5
