"""Staff's list of refunds on PostgreSQL (and SQLite): exactly the matching rows, those needing staff first
(ABNORMAL, then PENDING, longest waiting first), then the ended ones newest first, with their orders' numbers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.order import refunds
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, Refund
from services.order.uow import RefundSearch
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FIRST, SECOND = "20261206000000000000aaaaaaaa", "20261206000000000000bbbbbbbb"


@pytest.fixture
def stored(uow: Callable[[], SqlOrderUnitOfWork]) -> dict[str, tuple[str, int, str]]:
    """Refunds of two orders in every status, stored in an order the list must not keep: name → (refund_no,
    order id, order_no)."""
    orders = {FIRST: paid(uow, FIRST, OrderLine(101, 10, "茶", "", 1000, 5)),
              SECOND: paid(uow, SECOND, OrderLine(102, 11, "杯", "", 800, 5))}
    rows = {  # name: order, status, source, started (hours before NOW), last changed (hours before)
        "success_old": (FIRST, "SUCCESS", "cancel", 9, 8),
        "pending_recent": (FIRST, "PENDING", "after_sale:12", 1, 1),
        "abnormal_recent": (SECOND, "ABNORMAL", "cancel", 7, 2),
        "closed_new": (SECOND, "CLOSED", "late_payment", 3, 3),
        "pending_stuck": (SECOND, "PENDING", "after_sale:3", 6, 5),
        "abnormal_old": (FIRST, "ABNORMAL", "cancel_unshipped", 4, 4),
        "not_a_case": (FIRST, "SUCCESS", "after-sale:9", 2, 2),  # a LIKE 'after_sale:%' unescaped would match it
        "pending_same_time": (FIRST, "PENDING", "cancel", 5, 5),  # ties pending_stuck: the older id first
    }
    stored: dict[str, tuple[str, int, str]] = {}
    with uow() as tx:
        for number, (name, (order_no, status, source, started, changed)) in enumerate(rows.items(), start=1):
            refund_no = f"RF{number:020d}abcdef{number:02d}"
            tx.refunds.add(Refund(refund_no=refund_no, order_id=orders[order_no], source=source, status=status,
                                  amount_fen=100 * number, channel="wechat", reason=name, actor="staff:7",
                                  created_at=NOW - started * HOUR, updated_at=NOW - changed * HOUR,
                                  points_returned=60 if source == "cancel_unshipped" else 0))
            stored[name] = (refund_no, orders[order_no], order_no)
        tx.commit()
    return stored


def listed(uow: Callable[[], SqlOrderUnitOfWork], **search: object) -> tuple[list[str], int]:
    found, total = refunds.list_refunds(uow(), RefundSearch(**search))  # type: ignore[arg-type]
    return [item.refund.reason for item in found], total


def test_every_refund_needing_staff_comes_first_longest_waiting_first_then_the_ended_newest_first(
        uow: Callable[[], SqlOrderUnitOfWork], stored: dict[str, tuple[str, int, str]]) -> None:
    assert listed(uow) == (["abnormal_old", "abnormal_recent", "pending_stuck", "pending_same_time", "pending_recent",
                            "not_a_case", "closed_new", "success_old"], 8)


def test_a_page_is_that_order_cut_and_its_rows_carry_what_staff_see(
        uow: Callable[[], SqlOrderUnitOfWork], stored: dict[str, tuple[str, int, str]]) -> None:
    found, total = refunds.list_refunds(uow(), RefundSearch(offset=1, limit=2))

    assert total == 8
    assert [(item.refund.refund_no, item.refund.order_id, item.order_no, item.refund.source, item.refund.status,
             item.refund.amount_fen, item.refund.channel, item.refund.actor, item.refund.created_at,
             item.refund.updated_at) for item in found] == [
        (*stored["abnormal_recent"], "cancel", "ABNORMAL", 300, "wechat", "staff:7", NOW - 7 * HOUR, NOW - 2 * HOUR),
        (*stored["pending_stuck"], "after_sale:3", "PENDING", 500, "wechat", "staff:7", NOW - 6 * HOUR,
         NOW - 5 * HOUR)]


def test_each_listed_refund_carries_the_points_it_gives_back(uow: Callable[[], SqlOrderUnitOfWork],
                                                             stored: dict[str, tuple[str, int, str]]) -> None:
    found, _ = refunds.list_refunds(uow(), RefundSearch(status="ABNORMAL"))

    assert [(item.refund.reason, item.refund.points_returned) for item in found] == [
        ("abnormal_old", 60), ("abnormal_recent", 0)]


def test_pages_past_the_refunds_needing_staff_go_on_with_the_ended_ones(
        uow: Callable[[], SqlOrderUnitOfWork], stored: dict[str, tuple[str, int, str]]) -> None:
    assert listed(uow, offset=4, limit=3) == (["pending_recent", "not_a_case", "closed_new"], 8)
    assert listed(uow, offset=6, limit=5) == (["closed_new", "success_old"], 8)
    assert listed(uow, offset=8, limit=5) == ([], 8)
    assert listed(uow, source="cancel", offset=1, limit=2) == (["pending_same_time", "success_old"], 3)


def test_one_status_keeps_its_order(uow: Callable[[], SqlOrderUnitOfWork],
                                    stored: dict[str, tuple[str, int, str]]) -> None:
    assert listed(uow, status="PENDING") == (["pending_stuck", "pending_same_time", "pending_recent"], 3)
    assert listed(uow, status="ABNORMAL", offset=1, limit=5) == (["abnormal_recent"], 2)
    assert listed(uow, status="SUCCESS") == (["not_a_case", "success_old"], 2)


def test_sources_match_exactly_or_every_case_under_after_sale(uow: Callable[[], SqlOrderUnitOfWork],
                                                            stored: dict[str, tuple[str, int, str]]) -> None:
    assert listed(uow, source="after_sale") == (["pending_stuck", "pending_recent"], 2)
    assert listed(uow, source="after_sale:12") == (["pending_recent"], 1)
    assert listed(uow, source="cancel") == (["abnormal_recent", "pending_same_time", "success_old"], 3)


def test_the_order_number_and_the_start_time_window_narrow_it(uow: Callable[[], SqlOrderUnitOfWork],
                                                              stored: dict[str, tuple[str, int, str]]) -> None:
    assert listed(uow, order_no=SECOND) == (["abnormal_recent", "pending_stuck", "closed_new"], 3)
    assert listed(uow, order_no="20261206000000000000cccccccc") == ([], 0)
    # From inclusive, to exclusive: started 6 h (pending_stuck) and 2 h (not_a_case) before NOW are the edges.
    assert listed(uow, created_from=NOW - 6 * HOUR, created_to=NOW - 2 * HOUR) == (
        ["abnormal_old", "pending_stuck", "pending_same_time", "closed_new"], 4)
    assert listed(uow, status="ABNORMAL", order_no=FIRST, created_from=NOW - 5 * HOUR) == (["abnormal_old"], 1)
