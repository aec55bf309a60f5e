"""Completion and after-sales (O3, O4): open cases pause the auto-confirm clock, and order-completed carries what the
shopper kept, net of refunds, which is all the product service makes reviewable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope

from services.order import aftersales, service
from services.order.aftersales import AfterSale, AfterSaleSettings, CaseRequest
from services.order.domain import Order
from services.product import consumers
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.order.conftest import NOW, Shop, paid_order
from tests.unit.order.test_aftersales import IMAGE, FakeRefunder

DAY = timedelta(days=1)
SETTINGS = AfterSaleSettings(after_sale_days=7, return_ship_days=2)


def shipped(shop: Shop, *items: tuple[int, int], key: str = "paid") -> Order:
    order = paid_order(shop, *items, key=key)
    return service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S" + key, lines=None,
                              actor="staff:7", now=NOW)


def ask(shop: Shop, order: Order, lines: dict[int, int], *, at: datetime, kind: str = "refund_only") -> AfterSale:
    return aftersales.open_case(shop.uow, SETTINGS, user_id=1, now=at, request=CaseRequest(
        order_id=order.id or 0, type=kind, lines=lines, reason="broken", images=(IMAGE,)))


def auto_confirm(shop: Shop, at: datetime) -> int:
    return service.auto_confirm_orders(shop.uow, shop.settings, now=at)


def completed(shop: Shop) -> list:
    return [event.payload for event in shop.uow.published if event.event_type == "order-completed"]


def refund(shop: Shop, order: Order, lines: dict[int, int], at: datetime) -> AfterSale:
    """A refund-only case approved and refunded at once from the wallet, through the real refund engine."""
    case = ask(shop, order, lines, at=at)
    return aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(None, shop.members), case_id=case.id,
                             approve=True, reason="ok", actor="staff:8", now=at)


def test_an_open_case_holds_auto_confirm_and_the_shopper_may_still_confirm(shop: Shop) -> None:
    order = shipped(shop, (101, 2))
    ask(shop, order, {order.lines[0].id or 0: 1}, at=NOW + 3 * DAY)

    assert auto_confirm(shop, NOW + 20 * DAY) == 0
    assert (order.status, completed(shop)) == ("SHIPPED", [])
    service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=NOW + 20 * DAY)  # their own choice
    assert [(event.confirmed_by, len(event.lines)) for event in completed(shop)] == [("shopper", 1)]


def test_a_case_left_open_holds_auto_confirm_no_longer_than_the_most_after_sales_may_and_goes_on_after(
        shop: Shop) -> None:
    order = shipped(shop, (101, 2))  # 10 days to confirm, after-sales hold it 15 more at most
    case = ask(shop, order, {order.lines[0].id or 0: 1}, at=NOW + 3 * DAY)

    assert auto_confirm(shop, NOW + 25 * DAY - timedelta(seconds=1)) == 0
    assert auto_confirm(shop, NOW + 25 * DAY) == 1
    assert (order.status, order.completed_at, order.history[-1].reason) == (
        "COMPLETED", NOW + 25 * DAY,
        "confirmed automatically 10 days after shipping (after-sales paused the clock 15 days, the most they may)")
    _refunded(shop, case, NOW + 26 * DAY)  # the case is not cut short: staff still decide it
    assert (aftersales.get_case(shop.uow, user_id=1, case_id=case.id).status, order.refunded_fen) == (
        "REFUNDED", 1999)


def test_opening_and_withdrawing_cases_day_after_day_holds_the_order_only_the_most_after_sales_may(
        shop: Shop) -> None:
    order = shipped(shop, (101, 2))
    line = order.lines[0].id or 0
    day = 0
    for day in range(1, 40):  # a new case a minute after the job ran, withdrawn just before it runs again
        case = ask(shop, order, {line: 1}, at=NOW + (day - 1) * DAY + timedelta(minutes=1))
        _withdrawn(shop, case, NOW + day * DAY)
        if auto_confirm(shop, NOW + day * DAY):
            break

    assert (day, order.status, order.completed_at) == (25, "COMPLETED", NOW + 25 * DAY)


def test_days_held_by_earlier_cases_count_toward_the_most_a_case_open_now_may_hold(shop: Shop) -> None:
    order = shipped(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    _withdrawn(shop, ask(shop, order, {first: 1}, at=NOW + DAY), NOW + 6 * DAY)  # 5 days
    ask(shop, order, {second: 1}, at=NOW + 8 * DAY)  # open: the 15 days are up on the 18th day

    assert auto_confirm(shop, NOW + 25 * DAY - timedelta(seconds=1)) == 0
    assert auto_confirm(shop, NOW + 25 * DAY) == 1 and order.status == "COMPLETED"


def test_with_no_pause_allowed_after_sales_never_hold_auto_confirm(shop: Shop) -> None:
    order = shipped(shop, (101, 2))
    ask(shop, order, {order.lines[0].id or 0: 1}, at=NOW + 3 * DAY)

    settings = replace(shop.settings, auto_confirm_max_pause_days=0)
    assert service.auto_confirm_orders(shop.uow, settings, now=NOW + 10 * DAY) == 1
    assert order.history[-1].reason == "confirmed automatically 10 days after shipping"


def _withdrawn(shop: Shop, case: AfterSale, at: datetime) -> None:
    aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id, now=at)


def _rejected(shop: Shop, case: AfterSale, at: datetime) -> None:
    aftersales.decide(lambda: shop.uow, FakeRefunder(), case_id=case.id, approve=False, reason="no", actor="staff:8",
                      now=at)


def _refunded(shop: Shop, case: AfterSale, at: datetime) -> None:
    aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(None, shop.members), case_id=case.id,
                      approve=True, reason="ok", actor="staff:8", now=at)


def _return_expired(shop: Shop, case: AfterSale, at: datetime) -> None:
    aftersales.decide(lambda: shop.uow, FakeRefunder(), case_id=case.id, approve=True, reason="send it back",
                      actor="staff:8", now=at - timedelta(days=SETTINGS.return_ship_days))
    assert aftersales.expire_returns(shop.uow, SETTINGS, now=at) == 1


@pytest.mark.parametrize("end", [_withdrawn, _rejected, _refunded, _return_expired])
def test_auto_confirm_resumes_when_the_case_ends_with_the_days_it_was_open_added(
        shop: Shop, end: Callable[[Shop, AfterSale, datetime], None]) -> None:
    order = shipped(shop, (101, 2), (102, 3))
    kind = "return_refund" if end is _return_expired else "refund_only"
    case = ask(shop, order, {order.lines[0].id or 0: 1}, at=NOW + 3 * DAY, kind=kind)
    end(shop, case, NOW + 5 * DAY)
    assert not aftersales.get_case(shop.uow, user_id=1, case_id=case.id).is_open

    assert auto_confirm(shop, NOW + 10 * DAY) == 0  # 10 days after shipping, 2 of them paused
    assert (order.status, order.confirm_clock_at) == ("SHIPPED", NOW + 2 * DAY)
    assert auto_confirm(shop, NOW + 12 * DAY - timedelta(seconds=1)) == 0
    assert auto_confirm(shop, NOW + 12 * DAY) == 1
    assert (order.status, order.completed_at, order.history[-1].actor) == (
        "COMPLETED", NOW + 12 * DAY, "system:auto-confirm")
    assert [event.confirmed_by for event in completed(shop)] == ["auto"]


def test_cases_open_at_the_same_time_pause_the_clock_once_and_only_orders_held_wait(shop: Shop) -> None:
    held = shipped(shop, (101, 2), (102, 3), key="held")
    plain = shipped(shop, (102, 1), key="plain")
    first, second = (line.id or 0 for line in held.lines)
    one = ask(shop, held, {first: 1}, at=NOW + 3 * DAY)
    two = ask(shop, held, {second: 1}, at=NOW + 4 * DAY)
    _withdrawn(shop, one, NOW + 5 * DAY)
    _rejected(shop, two, NOW + 7 * DAY)  # open 3rd-7th day: 4 days paused, not 2 + 3

    assert auto_confirm(shop, NOW + 10 * DAY) == 1
    assert (plain.status, held.status, held.confirm_clock_at) == ("COMPLETED", "SHIPPED", NOW + 4 * DAY)
    assert auto_confirm(shop, NOW + 14 * DAY - timedelta(seconds=1)) == 0
    assert auto_confirm(shop, NOW + 14 * DAY) == 1 and held.status == "COMPLETED"


def test_a_case_opened_before_the_last_parcel_left_pauses_only_from_shipping(shop: Shop) -> None:
    order = paid_order(shop, (101, 2))
    line = order.lines[0].id or 0
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="P1", lines={line: 1}, actor="staff:7",
                       now=NOW - 4 * DAY)
    case = ask(shop, order, {line: 1}, at=NOW - 3 * DAY)  # the unit shipped first
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="P2", lines=None, actor="staff:7",
                       now=NOW)
    _withdrawn(shop, case, NOW + DAY)

    assert auto_confirm(shop, NOW + 11 * DAY - timedelta(seconds=1)) == 0
    assert auto_confirm(shop, NOW + 11 * DAY) == 1


def test_order_completed_lists_only_what_the_shopper_kept_and_only_that_becomes_reviewable(shop: Shop) -> None:
    shop.members.bp = 9_500  # 5498 - 274 level discount = 5224 paid, split 3798 / 1426 over the lines
    order = shipped(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    refund(shop, order, {first: 1}, NOW + 3 * DAY)   # 1899 of line 1's 3798
    refund(shop, order, {second: 0}, NOW + 3 * DAY)  # all 3 units: 1426

    assert auto_confirm(shop, NOW + 10 * DAY) == 1
    [event] = completed(shop)
    assert [(line.line_id, line.line.sku_id, line.line.quantity, line.refunded_quantity, line.kept_fen)
            for line in event.lines] == [(first, 101, 1, 1, 1899)]
    assert event.kept_fen == 5224 - 1899 - 1426 == 1899
    product = FakeProductUnitOfWork()
    consumers.on_order_completed(product, event, EventEnvelope(event_id="e1"))
    assert [(line.order_no, line.line_id, line.product_id, line.sku_id) for line in product.reviews.lines] == [
        (order.order_no, first, 10, 101)]


def test_an_order_refunded_in_full_completes_with_no_lines_and_nothing_kept(shop: Shop) -> None:
    order = shipped(shop, (101, 2), (102, 3))
    refund(shop, order, {line.id or 0: 0 for line in order.lines}, NOW + 3 * DAY)

    assert auto_confirm(shop, NOW + 10 * DAY) == 1
    [event] = completed(shop)
    assert (list(event.lines), event.kept_fen) == ([], 0)
    product = FakeProductUnitOfWork()
    consumers.on_order_completed(product, event, EventEnvelope(event_id="e1"))  # nothing to review, not dead-lettered
    assert product.reviews.lines == []


def test_the_shopper_confirming_an_order_without_refunds_lists_every_unit_and_the_amount_paid(shop: Shop) -> None:
    order = shipped(shop, (101, 2), (102, 3))
    service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=NOW + DAY)
    [event] = completed(shop)
    assert [(line.line.quantity, line.refunded_quantity, line.kept_fen) for line in event.lines] == [
        (2, 0, 3998), (3, 0, 1500)]
    assert event.kept_fen == 5498


def test_an_order_whose_case_opened_after_the_batch_was_chosen_is_not_confirmed(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order = shipped(shop, (101, 2))
    ask(shop, order, {order.lines[0].id or 0: 1}, at=NOW + 9 * DAY)
    # PostgreSQL chose the rows on a snapshot from before the case was committed, then locked the order once the
    # case's transaction let go of it: the batch holds the order, and only its cases, read under the lock, tell.
    chosen = [order]
    monkeypatch.setattr(shop.uow.orders, "lock_confirmable_before", lambda before, held_before, limit, skip=(): chosen)

    assert auto_confirm(shop, NOW + 10 * DAY) == 0
    assert (order.status, order.confirm_clock_at, completed(shop)) == ("SHIPPED", None, [])


def test_orders_a_recent_case_still_holds_do_not_crowd_due_orders_out_of_the_batch(shop: Shop) -> None:
    """After a pause of the job (or a lowered limit), an order shipped long ago but with a case opened yesterday is
    chosen by its shipping time alone and then left waiting for its case: it must not take the batch's place of an
    order that is due, or a batch full of them would hold every due order back for as long as their cases stay open."""
    held = shipped(shop, (101, 2), key="held")  # 10 days to confirm, after-sales hold it 15 more at most
    ask(shop, held, {held.lines[0].id or 0: 1}, at=NOW + 26 * DAY)  # the job did not run meanwhile
    due = paid_order(shop, (102, 1), key="due")
    service.ship_order(shop.uow, order_id=due.id, carrier="SF", tracking_no="Sdue", lines=None, actor="staff:7",
                       now=NOW + DAY)

    assert service.auto_confirm_orders(shop.uow, shop.settings, now=NOW + 27 * DAY, batch=1) == 1

    assert (held.status, due.status, [event.order_no for event in completed(shop)]) == (
        "SHIPPED", "COMPLETED", [due.order_no])
