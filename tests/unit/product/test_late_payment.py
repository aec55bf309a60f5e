"""An order-paid late past the reservation's TTL (product consumer or Kafka behind): the sweep asks the order service
first, a late order-paid takes expired units again or reports them oversold, a return restocks only what was sold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderLine, OrderPaid, OrderReturned
from prometheus_client import REGISTRY

from services.common.events import InvalidEvent
from services.common.uow import RoundBudget
from services.product import consumers, service
from services.product.domain import RESERVATION_TTL, StockLine
from tests.fakes import FakeOrders
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.common.test_liveness import FakeClock
from tests.unit.product.shelf import T0, counts, shop, sku_reserved_for_o1

AFTER_TTL = T0 + RESERVATION_TTL + timedelta(minutes=1)


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    return shop()


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()


@pytest.fixture
def sku(uow: FakeProductUnitOfWork) -> int:
    """One SKU on sale with 10 units, 3 of them reserved for order O1 at T0."""
    return sku_reserved_for_o1(uow, stock=10)


def consume(uow: FakeProductUnitOfWork, event: object) -> None:
    with uow:
        consumers.HANDLERS[type(event)](uow, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        uow.commit()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_sweep_confirms_a_paid_orders_reservation_whose_order_paid_is_late(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    orders.place("O1", "PAID", paid=True)
    before = metric("mall_stock_reservations_confirmed_by_sweep_total")

    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert (released, counts(uow, sku)) == (0, (7, 3, 3, ["CONFIRMED"]))
    assert metric("mall_stock_reservations_confirmed_by_sweep_total") - before == 1


def test_the_late_order_paid_after_the_sweep_confirmed_changes_nothing(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    orders.place("O1", "SHIPPED", paid=True)
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    ledger = len(uow.stock.ledger)

    consume(uow, OrderPaid(order_no="O1"))

    assert (counts(uow, sku), len(uow.stock.ledger)) == ((7, 3, 3, ["CONFIRMED"]), ledger)


def test_the_sweep_confirms_an_order_paid_then_closed(uow: FakeProductUnitOfWork, orders: FakeOrders,
                                                      sku: int) -> None:
    orders.place("O1", "CLOSED", paid=True)

    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert counts(uow, sku) == (7, 3, 3, ["CONFIRMED"])


def test_the_sweep_releases_a_cancelled_orders_reservation(uow: FakeProductUnitOfWork, orders: FakeOrders,
                                                           sku: int) -> None:
    orders.place("O1", "CANCELLED")

    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert (released, counts(uow, sku)) == (1, (10, 0, 0, ["EXPIRED"]))


def test_the_sweep_releases_the_reservation_of_an_order_never_placed(uow: FakeProductUnitOfWork, orders: FakeOrders,
                                                                     sku: int) -> None:
    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert (released, counts(uow, sku), orders.asked) == (1, (10, 0, 0, ["EXPIRED"]), [["O1"]])


def test_the_sweep_releases_nothing_when_the_order_service_does_not_answer(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    orders.down = True
    before = metric("mall_stock_reservations_deferred_total", reason="unanswered")

    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert (released, counts(uow, sku)) == (0, (7, 0, 0, ["RESERVED"]))
    assert metric("mall_stock_reservations_deferred_total", reason="unanswered") - before == 1


def test_the_next_sweep_settles_what_the_order_service_could_not_answer(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    orders.down = True
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    orders.down = False
    orders.place("O1", "PAID", paid=True)

    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL + timedelta(minutes=1))

    assert counts(uow, sku) == (7, 3, 3, ["CONFIRMED"])


def test_the_sweep_keeps_the_units_of_an_order_still_awaiting_payment(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    orders.place("O1", "PENDING_PAYMENT")
    before = metric("mall_stock_reservations_deferred_total", reason="awaiting_payment")

    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)

    assert (released, counts(uow, sku)) == (0, (7, 0, 0, ["RESERVED"]))
    assert metric("mall_stock_reservations_deferred_total", reason="awaiting_payment") - before == 1


def test_the_sweep_pages_past_orders_awaiting_payment_to_release_a_cancelled_one(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    for order_no in ("O2", "O3"):
        service.reserve_stock(uow, order_no=order_no, lines=[StockLine(sku, 1)], now=T0)
    service.reserve_stock(uow, order_no="O4", lines=[StockLine(sku, 2)], now=T0 + timedelta(seconds=30))
    for order_no in ("O1", "O2", "O3"):
        orders.place(order_no, "PENDING_PAYMENT")
    orders.place("O4", "CANCELLED")

    released = service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL, batch=2)

    assert (released, counts(uow, sku)[0]) == (1, 5)  # 10 - 3 - 1 - 1 held, O4's 2 back on sale
    assert [r.status for r in uow.reservations.of_order("O4")] == ["EXPIRED"]


def test_a_late_order_paid_takes_expired_units_again_while_the_stock_has_them(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)  # not known to the order service yet

    consume(uow, OrderPaid(order_no="O1"))
    consume(uow, OrderPaid(order_no="O1"))  # published again

    assert counts(uow, sku) == (7, 3, 3, ["CONFIRMED"])
    assert [m.kind for m in uow.stock.ledger if m.reference == "O1"] == ["reserve", "expire", "late_sale"]


def test_a_late_order_paid_for_units_sold_since_is_counted_oversold_and_done(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    service.reserve_stock(uow, order_no="O2", lines=[StockLine(sku, 9)], now=AFTER_TTL)
    before = metric("mall_stock_oversold_units_total")

    consume(uow, OrderPaid(order_no="O1"))  # no exception: the event is done, never dead-lettered or retried

    assert counts(uow, sku) == (1, 0, 0, ["EXPIRED"])
    assert metric("mall_stock_oversold_units_total") - before == 3


def test_a_return_of_units_never_sold_from_the_stock_changes_nothing(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    service.reserve_stock(uow, order_no="O2", lines=[StockLine(sku, 9)], now=AFTER_TTL)
    consume(uow, OrderPaid(order_no="O1"))  # oversold: O1's reservation stays EXPIRED

    consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku, quantity=3)]))
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))  # nothing to give back; marked cancelled

    assert counts(uow, sku) == (1, 0, 0, ["RELEASED"])


def test_a_return_of_units_sold_from_the_stock_still_restocks_them(uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderPaid(order_no="O1"))

    consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku, quantity=2)]))

    assert counts(uow, sku) == (9, 1, 1, ["CONFIRMED"])


def test_the_ledger_balances_after_a_late_sale(uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    consume(uow, OrderPaid(order_no="O1"))

    assert service.check_stock_ledger(uow) == (1, [])


# Reservations RELEASED: by the sweep before EXPIRED existed (a late order-paid takes them again as an EXPIRED one), or
# by a cancellation (never paid after: the order service refunds a cancelled order's payment, with no order-paid).

def swept_as_the_old_sweep_did(uow: FakeProductUnitOfWork, orders: FakeOrders) -> None:
    """The sweep puts O1's 3 units back on sale (`expire`) and leaves the rows RELEASED, as it did before EXPIRED."""
    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    for reservation in uow.reservations.of_order("O1"):
        assert reservation.id is not None
        uow.reservations.move(reservation.id, "EXPIRED", "RELEASED")


def test_a_late_order_paid_takes_again_units_the_old_sweep_left_released(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    swept_as_the_old_sweep_did(uow, orders)

    consume(uow, OrderPaid(order_no="O1"))
    consume(uow, OrderPaid(order_no="O1"))  # published again

    assert counts(uow, sku) == (7, 3, 3, ["CONFIRMED"])
    assert [m.kind for m in uow.stock.ledger if m.reference == "O1"] == ["reserve", "expire", "late_sale"]
    assert service.check_stock_ledger(uow) == (1, [])


def test_a_late_order_paid_for_units_the_old_sweep_released_and_sold_since_is_oversold_and_done(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    swept_as_the_old_sweep_did(uow, orders)
    service.reserve_stock(uow, order_no="O2", lines=[StockLine(sku, 9)], now=AFTER_TTL)
    before = metric("mall_stock_oversold_units_total")

    consume(uow, OrderPaid(order_no="O1"))  # no exception: never dead-lettered or retried

    assert counts(uow, sku) == (1, 0, 0, ["RELEASED"])
    assert metric("mall_stock_oversold_units_total") - before == 3


def test_an_order_paid_for_a_cancelled_orders_released_units_is_still_dead_lettered(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderCancelled(order_no="O1"))

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(uow, OrderPaid(order_no="O1"))

    assert counts(uow, sku) == (10, 0, 0, ["RELEASED"])


def test_an_order_paid_behind_its_paid_cancellation_takes_nothing(uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))  # overtook the order-paid: the order is refunded

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(uow, OrderPaid(order_no="O1"))

    assert counts(uow, sku) == (10, 0, 0, ["RELEASED"])


def test_an_order_paid_again_after_the_late_sale_was_cancelled_takes_nothing(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int) -> None:
    swept_as_the_old_sweep_did(uow, orders)
    consume(uow, OrderPaid(order_no="O1"))  # late_sale
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))  # cancel_paid: refunded, units back on sale

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(uow, OrderPaid(order_no="O1"))  # replayed from the dead letters, say

    assert counts(uow, sku) == (10, 0, 0, ["RELEASED"])
    assert service.check_stock_ledger(uow) == (1, [])


@pytest.mark.parametrize("sweep", ["expired", "old sweep"])
def test_a_paid_cancellation_overtaking_the_late_order_paid_leaves_the_swept_units_on_sale(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int, sweep: str) -> None:
    """Paid late, then cancelled and refunded: order-cancelled (was_paid) is applied before order-paid (other
    topics, no order between them). The late order-paid must not sell the units of a refunded order."""
    if sweep == "expired":
        service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    else:
        swept_as_the_old_sweep_did(uow, orders)
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))  # a replay changes nothing
    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(uow, OrderPaid(order_no="O1"))

    assert counts(uow, sku) == (10, 0, 0, ["RELEASED"])
    assert [(m.kind, m.available, m.sold) for m in uow.stock.ledger if m.reference == "O1"] == [
        ("reserve", -3, 0), ("expire", 3, 0), ("cancel_paid", 0, 0)]


def test_a_return_of_more_units_than_the_order_bought_restocks_only_those_it_bought(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderPaid(order_no="O1"))  # 3 sold

    consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku, quantity=5)]))

    assert (counts(uow, sku), service.check_stock_ledger(uow)) == ((10, 0, 0, ["CONFIRMED"]), (1, []))


def test_returns_of_one_order_in_several_cases_restock_at_most_what_it_bought(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderPaid(order_no="O1"))  # 3 sold

    consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku, quantity=2)]))
    consume(uow, OrderReturned(order_no="O1", case_no="AS2", lines=[OrderLine(sku_id=sku, quantity=2)]))

    assert counts(uow, sku) == (10, 0, 0, ["CONFIRMED"])


def test_a_case_republished_under_a_new_event_id_restocks_once(uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderPaid(order_no="O1"))  # 3 sold

    for _ in range(2):  # consume() gives every event the same id: the consumer's dedup is not what stops it here
        consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku, quantity=1)]))

    assert counts(uow, sku) == (8, 2, 2, ["CONFIRMED"])


def test_a_paid_cancellation_after_a_return_gives_back_only_the_units_not_returned(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, OrderPaid(order_no="O1"))  # 3 sold
    consume(uow, OrderReturned(order_no="O1", case_no="RF1", lines=[OrderLine(sku_id=sku, quantity=1)]))

    consume(uow, OrderCancelled(order_no="O1", was_paid=True))

    assert (counts(uow, sku), service.check_stock_ledger(uow)) == ((10, 0, 0, ["RELEASED"]), (1, []))


def test_a_sweep_round_stops_at_its_budget_and_the_next_goes_on_after_the_last_order_it_handled(
        uow: FakeProductUnitOfWork, orders: FakeOrders, sku: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, order_no in enumerate(("O2", "O3", "O4", "O5"), start=1):  # after O1's, one unit each, in that order
        service.reserve_stock(uow, order_no=order_no, lines=[StockLine(sku, 1)], now=T0 + timedelta(seconds=n))
    orders.place("O1", "PENDING_PAYMENT")  # keeps its 3 units held, round after round
    orders.place("O2", "CANCELLED")
    orders.place("O3", "PAID", paid=True)  # O4 is unknown to the order service; O5 cancelled
    orders.place("O5", "CANCELLED")
    clock, settle_one = FakeClock(), service._settle_expired

    def settle_taking_10_seconds(*args: object, **kwargs: object) -> int:
        clock.advance(10)
        return settle_one(*args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(service, "_settle_expired", settle_taking_10_seconds)
    budget, rounds = RoundBudget(15, 0, clock=clock), []
    for _ in range(3):
        budget.start()
        asked = len(orders.asked)
        rounds.append((service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL, batch=2,
                                                            budget=budget), orders.asked[asked:]))

    # 10 s an order settled within 15 s: O3's starts at 10 s, O4's would start at 20 s; the second round goes on
    # with O4 (O1 and O3 are not asked about again) and reaches the end; the third starts over
    assert rounds == [(1, [["O1", "O2"], ["O3", "O4"]]), (2, [["O4", "O5"]]), (0, [["O1"]])]
    product, found = uow.products.sku(sku)  # type: ignore[misc]
    assert (found.stock, found.sales, product.sales) == (10 - 3 - 1, 1, 1)  # O1's 3 held, O3's 1 sold
    assert {r.order_no: r.status for r in uow.reservations.items} == {
        "O1": "RESERVED", "O2": "EXPIRED", "O3": "CONFIRMED", "O4": "EXPIRED", "O5": "EXPIRED"}
