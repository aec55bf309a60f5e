"""An order-paid late past the reservation's TTL, on PostgreSQL: the sweep asks the order service (a fake here, the
real one over gRPC in the last tests) before it puts units back on sale; a late order-paid takes expired units again
or reports them oversold; a return restocks only units sold from the stock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderLine, OrderPaid, OrderReturned
from mall.order.v1 import order_pb2, order_pb2_grpc
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select, update

from services.common.clients import ServiceClients
from services.common.config import Env
from services.common.consumer import EventConsumer
from services.common.discovery import Discovery
from services.common.errors import DomainError
from services.common.events import InvalidEvent
from services.common.grpc_server import from_grpc
from services.common.orders import GrpcOrders, OrderState
from services.common.outbox import dead_letters, processed_events
from services.order import db as order_db
from services.product import consumers, service
from services.product.consumers import HANDLERS
from services.product.db import reservations
from services.product.domain import RESERVATION_TTL, StockLine
from tests.fakes import FakeOrders
from tests.fixtures.keys import JwtKeys, as_service, service_token
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.product.conftest import KAFKA, T0, Shelf, delivered, place_order
from tools.audit import check_stock

pytestmark = pytest.mark.integration

AFTER_TTL = T0 + RESERVATION_TTL + timedelta(minutes=1)


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()


@pytest.fixture
def phone(shelf: Shelf) -> tuple[int, int]:
    """(product_id, sku_id) of a phone on sale with 10 units, 3 of them reserved for order O1 at T0."""
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="O1", lines=[StockLine(sku_id, 3)], now=T0)
    return product_id, sku_id


def counts(shelf: Shelf, engine: Engine, product_id: int) -> tuple[int, int, int, list[str]]:
    """The SKU's stock and sales, the product's sales, and O1's reservation statuses, as stored."""
    product = service.get_admin_product(shelf.uow(), product_id=product_id).product
    with engine.connect() as db:
        statuses = db.execute(select(reservations.c.status).where(reservations.c.order_no == "O1")).scalars().all()
    return product.skus[0].stock, product.skus[0].sales, product.sales, list(statuses)


def consume(shelf: Shelf, event: object) -> None:
    with shelf.uow() as uow:
        consumers.HANDLERS[type(event)](uow, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        uow.commit()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_sweep_pages_past_orders_awaiting_payment_to_release_a_cancelled_one(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    for order_no in ("O2", "O3"):  # O1 and these expire together: the order number breaks the tie
        service.reserve_stock(shelf.uow(), order_no=order_no, lines=[StockLine(sku_id, 1)], now=T0)
    service.reserve_stock(shelf.uow(), order_no="O4", lines=[StockLine(sku_id, 2)], now=T0 + timedelta(seconds=30))
    for order_no in ("O1", "O2", "O3"):
        orders.place(order_no, "PENDING_PAYMENT")
    orders.place("O4", "CANCELLED")

    released = service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL, batch=2)

    assert (released, counts(shelf, pg_engine, product_id)[0]) == (1, 5)
    assert orders.asked == [["O1", "O2"], ["O3", "O4"]]


def test_a_paid_orders_reservation_survives_the_sweep_and_its_late_order_paid_changes_nothing(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, _ = phone
    orders.place("O1", "PAID", paid=True)  # paid, but its order-paid not delivered yet

    released = service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)
    after_sweep = counts(shelf, pg_engine, product_id)
    consume(shelf, OrderPaid(order_no="O1"))  # the late event

    assert (released, after_sweep, counts(shelf, pg_engine, product_id)) == (
        0, (7, 3, 3, ["CONFIRMED"]), (7, 3, 3, ["CONFIRMED"]))
    assert service.check_stock_ledger(shelf.uow()) == (1, [])


def test_a_cancelled_orders_reservation_goes_back_on_sale(shelf: Shelf, pg_engine: Engine, orders: FakeOrders,
                                                          phone: tuple[int, int]) -> None:
    orders.place("O1", "CANCELLED")

    released = service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)

    assert (released, counts(shelf, pg_engine, phone[0])) == (1, (10, 0, 0, ["EXPIRED"]))


def test_nothing_is_released_while_the_order_service_is_down(shelf: Shelf, pg_engine: Engine, orders: FakeOrders,
                                                             phone: tuple[int, int]) -> None:
    orders.down = True

    released = service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)

    assert (released, counts(shelf, pg_engine, phone[0])) == (0, (7, 0, 0, ["RESERVED"]))


def test_a_late_order_paid_on_an_expired_reservation_takes_the_units_again(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)  # O1 unknown to the order service then
    assert counts(shelf, pg_engine, phone[0]) == (10, 0, 0, ["EXPIRED"])

    consume(shelf, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, phone[0]) == (7, 3, 3, ["CONFIRMED"])
    assert service.check_stock_ledger(shelf.uow()) == (1, [])


def sell_expired_units_to_another_order(shelf: Shelf, orders: FakeOrders, sku_id: int) -> None:
    """The sweep expires O1's 3 units (its payment unknown to the order service yet) and O2 buys 9 of the 10."""
    service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)
    service.reserve_stock(shelf.uow(), order_no="O2", lines=[StockLine(sku_id, 9)], now=AFTER_TTL)
    consume(shelf, OrderPaid(order_no="O2"))


def test_a_late_order_paid_for_units_sold_since_is_oversold_once_and_not_retried(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    sell_expired_units_to_another_order(shelf, orders, sku_id)
    before = metric("mall_stock_oversold_units_total")

    consume(shelf, OrderPaid(order_no="O1"))  # returns: the consumer commits it, no dead letter, no retry

    assert counts(shelf, pg_engine, product_id) == (1, 9, 9, ["EXPIRED"])
    assert metric("mall_stock_oversold_units_total") - before == 3
    assert service.check_stock_ledger(shelf.uow()) == (1, [])


def test_a_return_of_an_unconfirmed_reservation_changes_nothing(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    sell_expired_units_to_another_order(shelf, orders, sku_id)
    consume(shelf, OrderPaid(order_no="O1"))  # oversold: O1's units were never taken

    consume(shelf, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku_id, quantity=3)]))

    assert counts(shelf, pg_engine, product_id) == (1, 9, 9, ["EXPIRED"])
    assert service.check_stock_ledger(shelf.uow()) == (1, [])


def swept_as_the_old_sweep_did(shelf: Shelf, pg_engine: Engine, orders: FakeOrders) -> None:
    """The sweep puts O1's 3 units back on sale (`expire`) and leaves its rows RELEASED, as it did before EXPIRED."""
    service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)
    with pg_engine.begin() as db:
        db.execute(update(reservations).where(reservations.c.order_no == "O1").values(status="RELEASED"))


def test_a_late_order_paid_takes_again_units_the_old_sweep_left_released_and_audits_clean(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, _ = phone
    swept_as_the_old_sweep_did(shelf, pg_engine, orders)
    assert counts(shelf, pg_engine, product_id) == (10, 0, 0, ["RELEASED"])
    consumer = EventConsumer("product", shelf.uow, KAFKA, HANDLERS)

    applied = consumer.handle(delivered(OrderPaid(order_no="O1"), "order-paid", "O1"))  # main: dead-lettered

    audit = check_stock(pg_engine, AFTER_TTL)
    with pg_engine.connect() as db:
        dead = db.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        consumed = db.execute(select(processed_events.c.event_type)).scalars().all()  # make audit's order-paid check
    assert (applied, dead, consumed) == (True, 0, ["order-paid"])
    assert counts(shelf, pg_engine, product_id) == (7, 3, 3, ["CONFIRMED"])
    assert (audit.checked, audit.mismatches) == (1, [])


def test_a_late_order_paid_for_units_the_old_sweep_released_and_sold_since_is_oversold_and_audits_clean(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    swept_as_the_old_sweep_did(shelf, pg_engine, orders)
    service.reserve_stock(shelf.uow(), order_no="O2", lines=[StockLine(sku_id, 9)], now=AFTER_TTL)
    consume(shelf, OrderPaid(order_no="O2"))
    before = metric("mall_stock_oversold_units_total")

    consume(shelf, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, product_id) == (1, 9, 9, ["RELEASED"])
    assert metric("mall_stock_oversold_units_total") - before == 3
    assert check_stock(pg_engine, AFTER_TTL).mismatches == []


def test_an_order_paid_for_units_a_cancellation_released_is_still_dead_lettered(
        shelf: Shelf, pg_engine: Engine, phone: tuple[int, int]) -> None:
    consume(shelf, OrderCancelled(order_no="O1"))

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(shelf, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, phone[0]) == (10, 0, 0, ["RELEASED"])


@pytest.mark.parametrize("sweep", ["expired", "old sweep"])
def test_a_paid_cancellation_overtaking_the_late_order_paid_takes_nothing_and_audits_clean(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int], sweep: str) -> None:
    if sweep == "expired":
        service.release_expired_reservations(shelf.uow, orders, now=AFTER_TTL)
    else:
        swept_as_the_old_sweep_did(shelf, pg_engine, orders)
    consume(shelf, OrderCancelled(order_no="O1", was_paid=True))  # paid late, cancelled and refunded

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(shelf, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, phone[0]) == (10, 0, 0, ["RELEASED"])
    assert check_stock(pg_engine, AFTER_TTL).mismatches == []


def released_before_the_ledger(shelf: Shelf, pg_engine: Engine) -> tuple[int, int]:
    """(product_id, sku_id) of a phone with 10 units whose order O1 reserved 3 and had them RELEASED before the stock
    ledger existed (product migration 0006): the row, and no movement for O1 (its stock back to 10 before `opening`)."""
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    with pg_engine.begin() as db:
        db.execute(reservations.insert().values(order_no="O1", sku_id=sku_id, quantity=3, status="RELEASED",
                                                created_at=T0, expires_at=T0 + RESERVATION_TTL))
    return product_id, sku_id


def consume_asking(shelf: Shelf, orders: FakeOrders, event: object) -> None:
    """`event` applied by the serve role's handlers, which ask the order service about releases before the ledger."""
    with shelf.uow() as uow:
        consumers.handlers(orders)[type(event)](uow, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        uow.commit()


@pytest.mark.parametrize("status", ["PAID", "SHIPPED", "CANCEL_REQUESTED"])
def test_a_late_order_paid_takes_again_units_released_before_the_ledger_of_an_order_going_ahead(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, status: str) -> None:
    product_id, _ = released_before_the_ledger(shelf, pg_engine)
    orders.place("O1", status, paid=True)  # the old sweep put a paid order's units back on sale

    consume_asking(shelf, orders, OrderPaid(order_no="O1"))  # main: dead-lettered (RESERVATION_RELEASED)

    assert (counts(shelf, pg_engine, product_id), orders.asked) == ((7, 3, 3, ["CONFIRMED"]), [["O1"]])
    assert check_stock(pg_engine, AFTER_TTL).mismatches == []


def test_a_late_order_paid_for_units_released_before_the_ledger_and_sold_since_is_oversold(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders) -> None:
    product_id, sku_id = released_before_the_ledger(shelf, pg_engine)
    service.reserve_stock(shelf.uow(), order_no="O2", lines=[StockLine(sku_id, 9)], now=AFTER_TTL)
    consume(shelf, OrderPaid(order_no="O2"))
    orders.place("O1", "SHIPPED", paid=True)
    before = metric("mall_stock_oversold_units_total")

    consume_asking(shelf, orders, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, product_id) == (1, 9, 9, ["RELEASED"])
    assert metric("mall_stock_oversold_units_total") - before == 3
    assert check_stock(pg_engine, AFTER_TTL).mismatches == []


@pytest.mark.parametrize("status", ["CANCELLED", "REFUNDING", "REFUNDED"])
def test_an_order_paid_for_units_a_paid_cancellation_released_before_the_ledger_is_still_dead_lettered(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, status: str) -> None:
    product_id, _ = released_before_the_ledger(shelf, pg_engine)
    orders.place("O1", status, paid=True)

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume_asking(shelf, orders, OrderPaid(order_no="O1"))

    assert counts(shelf, pg_engine, product_id) == (10, 0, 0, ["RELEASED"])


def test_an_order_paid_for_units_released_before_the_ledger_waits_while_the_order_service_is_down(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders) -> None:
    product_id, _ = released_before_the_ledger(shelf, pg_engine)
    orders.place("O1", "PAID", paid=True)
    orders.down = True

    with pytest.raises(DomainError) as unanswered:  # not InvalidEvent: the consumer delivers it again
        consume_asking(shelf, orders, OrderPaid(order_no="O1"))
    assert (type(unanswered.value), unanswered.value.code, counts(shelf, pg_engine, product_id)) == (
        DomainError, "ORDER_STATE_UNAVAILABLE", (10, 0, 0, ["RELEASED"]))

    orders.down = False
    consume_asking(shelf, orders, OrderPaid(order_no="O1"))
    assert counts(shelf, pg_engine, product_id) == (7, 3, 3, ["CONFIRMED"])


def test_the_order_service_is_asked_only_about_releases_before_the_ledger(
        shelf: Shelf, pg_engine: Engine, orders: FakeOrders, phone: tuple[int, int]) -> None:
    swept_as_the_old_sweep_did(shelf, pg_engine, orders)  # RELEASED, its `expire` in the ledger
    asked_by_the_sweep = list(orders.asked)

    consume_asking(shelf, orders, OrderPaid(order_no="O1"))

    assert (counts(shelf, pg_engine, phone[0]), orders.asked) == ((7, 3, 3, ["CONFIRMED"]), asked_by_the_sweep)


# The real order service over gRPC (conftest order_target), asked as the product service asks it

@pytest.mark.parametrize("reader", ["product", "member"])  # the reservation sweep's, the checkout-hold sweep's
def test_the_order_service_tells_the_product_and_member_services_which_orders_were_paid(
        order_uow: Callable[[], order_db.SqlOrderUnitOfWork], order_target: str, jwt_keys: JwtKeys,
        reader: str) -> None:
    place_order(order_uow, "PAID-1", paid=True)
    place_order(order_uow, "OPEN-1", paid=False)
    clients = ServiceClients(Discovery(None, Env({"ORDER_GRPC_TARGET": order_target})), 10,
                             service_token=service_token(jwt_keys, reader))

    states = GrpcOrders(clients).states(["PAID-1", "OPEN-1", "NEVER"])

    assert states == {"PAID-1": OrderState("PAID-1", "PAID", True),
                      "OPEN-1": OrderState("OPEN-1", "PENDING_PAYMENT", False)}
    clients.close()


@pytest.mark.parametrize("caller", ["order", "user"])
def test_only_the_product_and_member_services_may_read_order_states(order_target: str, jwt_keys: JwtKeys, caller: str) -> None:
    metadata = as_service(jwt_keys, "order") if caller == "order" else []
    with grpc.insecure_channel(order_target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            order_pb2_grpc.OrderServiceStub(channel).GetOrderStates(
                order_pb2.GetOrderStatesRequest(order_nos=["PAID-1"]), metadata=metadata, timeout=10)

    assert from_grpc(refused.value)[1] == ("FORBIDDEN" if caller == "order" else "AUTH_REQUIRED")


def test_two_return_cases_of_one_order_applied_at_once_restock_at_most_what_it_bought(
        shelf: Shelf, pg_engine: Engine, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    consume(shelf, OrderPaid(order_no="O1"))  # 3 sold: stock 7
    results: dict[str, object] = {}
    with shelf.uow() as holder:  # holds O1's lock: both returns queue on it, then run one after the other
        holder.reservations.lock_order("O1")
        returns = [start_thread(results, case, lambda case=case: consume(shelf, OrderReturned(  # type: ignore[misc]
            order_no="O1", case_no=case, lines=[OrderLine(sku_id=sku_id, quantity=2)]))) for case in ("AS1", "AS2")]
        for racing in returns:
            wait_until_blocked(pg_engine, racing)
        holder.commit()
    for racing in returns:
        racing.join()

    assert (results, counts(shelf, pg_engine, product_id)) == ({"AS1": None, "AS2": None}, (10, 0, 0, ["CONFIRMED"]))
    assert service.check_stock_ledger(shelf.uow()) == (1, [])
