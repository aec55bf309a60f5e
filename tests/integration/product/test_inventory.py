"""Stock reservations on PostgreSQL over real gRPC: never oversold under concurrency, all-or-nothing, replay-safe."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest
from mall.product.v1 import product_pb2, product_pb2_grpc
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from services.common.clients import ContextClientInterceptor
from services.common.config import ServiceSettings
from services.common.errors import Conflict
from services.common.grpc_server import CODE_KEY, create_server, registration
from services.order.db import SqlOrderUnitOfWork
from services.product import service
from services.product.__main__ import build_app
from services.product.db import reservations, skus, stock_movements
from services.product.domain import RESERVATION_TTL, StockLine
from services.product.grpc_api import ProductServicer
from tests.fakes import FakeOrders
from tests.fixtures.keys import JwtKeys, service_token
from tests.integration.product.conftest import T0, Shelf, UowFactory, confirm_paid, place_order

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(pg_uow: UowFactory, jwt_keys: JwtKeys) -> Iterator[product_pb2_grpc.ProductServiceStub]:
    settings = ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                    "PRODUCT_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(product_pb2, product_pb2_grpc, "ProductService",
                                                         ProductServicer(pg_uow))])
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    # As the order service calls them: with its own service token (only it may reserve stock)
    as_order = ContextClientInterceptor(60, service_token=service_token(jwt_keys, "order"))
    yield product_pb2_grpc.ProductServiceStub(grpc.intercept_channel(channel, as_order))
    channel.close()
    server.stop(grace=None)


def reserve(stub: product_pb2_grpc.ProductServiceStub, order_no: str, *lines: tuple[int, int]
            ) -> product_pb2.ReserveStockResponse:
    return stub.ReserveStock(product_pb2.ReserveStockRequest(
        order_no=order_no, lines=[product_pb2.StockLine(sku_id=s, quantity=q) for s, q in lines]), timeout=30)


def error_code(exc: grpc.RpcError) -> str:
    return dict(exc.trailing_metadata() or ()).get(CODE_KEY, exc.code().name)


def outcome(call: object) -> str:
    try:
        call()  # type: ignore[operator]
        return "ok"
    except grpc.RpcError as exc:
        return error_code(exc)


def reserved_units(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), func.coalesce(func.sum(reservations.c.quantity), 0))
                                  .select_from(reservations)).one())  # type: ignore[return-value]


def ledger_kinds(engine: Engine, sku_id: int) -> Counter[tuple[str, int, int]]:
    with engine.connect() as conn:
        return Counter(tuple(row) for row in conn.execute(  # type: ignore[misc]
            select(stock_movements.c.kind, stock_movements.c.available, stock_movements.c.reserved)
            .where(stock_movements.c.sku_id == sku_id)))


def test_500_concurrent_reservations_of_one_unit_sell_exactly_the_50_in_stock(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    product_id = shelf.product("限量手机", stock=50)
    [sku_id] = shelf.sku_ids(product_id)
    lowest = [50]
    done = threading.Event()

    def watch_stock() -> None:  # samples the stock while the orders race: it must never go below zero
        with pg_engine.connect() as conn:
            while not done.is_set():
                lowest[0] = min(lowest[0], conn.execute(select(skus.c.stock).where(skus.c.id == sku_id)).scalar_one())
                conn.rollback()

    watcher = threading.Thread(target=watch_stock)
    watcher.start()
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = Counter(pool.map(lambda n: outcome(lambda: reserve(stub, f"O{n:04d}", (sku_id, 1))), range(500)))
    done.set()
    watcher.join()

    assert (results, shelf.stock(product_id), reserved_units(pg_engine), lowest[0]) == (
        Counter({"ok": 50, "OUT_OF_STOCK": 450}), [0], (50, 50), 0)
    # the stock ledger holds the initial 50 and exactly one movement per winning order, summing to the counts
    assert (ledger_kinds(pg_engine, sku_id), service.check_stock_ledger(shelf.uow())) == (
        {("initial", 50, 0): 1, ("reserve", -1, 1): 50}, (1, []))


def test_a_multi_line_order_with_one_short_line_reserves_nothing(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    plenty, scarce = shelf.product("充足", stock=10), shelf.product("紧缺", stock=1)
    [plenty_sku], [scarce_sku] = shelf.sku_ids(plenty), shelf.sku_ids(scarce)

    with pytest.raises(grpc.RpcError) as raised:
        reserve(stub, "O1", (plenty_sku, 3), (scarce_sku, 2))

    assert (error_code(raised.value), raised.value.code(), shelf.stock(plenty), shelf.stock(scarce),
            reserved_units(pg_engine)) == ("OUT_OF_STOCK", grpc.StatusCode.FAILED_PRECONDITION, [10], [1], (0, 0))


def test_a_reservation_answers_the_snapshot_it_held_and_its_replay_the_same(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub) -> None:
    phone, kettle = shelf.product("手机", price_fen=199_900, stock=5), shelf.product("水壶", price_fen=8_800, category_id=2)
    [phone_sku], [kettle_sku] = shelf.sku_ids(phone), shelf.sku_ids(kettle)

    held = reserve(stub, "O1", (kettle_sku, 1), (phone_sku, 5))
    replay = reserve(stub, "O1", (phone_sku, 5), (kettle_sku, 1))

    snapshot = [(o.sku.id, o.product_id, o.name, o.sku.price_fen, o.on_sale, o.category_id, o.sku.stock_status)
                for o in held.skus]
    assert snapshot == sorted([(phone_sku, phone, "手机", 199_900, True, 3, "sold_out"),
                               (kettle_sku, kettle, "水壶", 8_800, True, 2, "in_stock")])
    assert [(o.sku.id, o.sku.price_fen) for o in replay.skus] == [(sku, price) for sku, _, _, price, *_ in snapshot]


@pytest.mark.parametrize("status", ["off_shelf", "draft"])
def test_a_sku_off_sale_is_refused_as_unavailable_not_as_out_of_stock(
        status: str, shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    on_sale, gone = shelf.product("在售", stock=10), shelf.product("下架", status=status, stock=10)
    [on_sale_sku], [gone_sku] = shelf.sku_ids(on_sale), shelf.sku_ids(gone)

    refusals = [outcome(lambda lines=lines: reserve(stub, "O1", *lines))
                for lines in [((on_sale_sku, 1), (gone_sku, 1)), ((on_sale_sku, 1), (999_999, 1)), ((on_sale_sku, 11),)]]

    assert (refusals, shelf.stock(on_sale), shelf.stock(gone), reserved_units(pg_engine)) == (
        ["SKU_UNAVAILABLE", "SKU_UNAVAILABLE", "OUT_OF_STOCK"], [10], [10], (0, 0))


def test_concurrent_replays_of_one_reservation_take_stock_once(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda _: reserve(stub, "SAME", (sku_id, 3)), range(16)))

    assert ({(r.status, tuple((x.sku_id, x.quantity) for x in r.lines)) for r in replies},
            shelf.stock(product_id), reserved_units(pg_engine)) == ({("RESERVED", ((sku_id, 3),))}, [7], (1, 3))


def test_confirm_replays_count_sales_once_and_release_then_changes_nothing(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_uow: UowFactory) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    reserve(stub, "O1", (sku_id, 4))

    confirmed = [confirm_paid(pg_uow(), "O1") for _ in range(3)]  # order-paid, replayed
    release = outcome(lambda: stub.ReleaseReservation(product_pb2.ReservationRef(order_no="O1")))
    replay = reserve(stub, "O1", (sku_id, 4))

    product = service.get_admin_product(pg_uow(), product_id=product_id).product
    assert (confirmed, release, replay.status, product.sales, product.skus[0].sales, product.skus[0].stock) == (
        ["CONFIRMED"] * 3, "RESERVATION_CONFIRMED", "CONFIRMED", 4, 4, 6)


def test_release_replays_put_stock_back_once(shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub,
                                             pg_uow: UowFactory) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    reserve(stub, "O1", (sku_id, 4))
    ref = product_pb2.ReservationRef(order_no="O1")

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = set(pool.map(lambda _: stub.ReleaseReservation(ref).status, range(8)))
    with pytest.raises(Conflict) as paid_after:
        confirm_paid(pg_uow(), "O1")

    assert (statuses, shelf.stock(product_id), paid_after.value.code) == ({"RELEASED"}, [10], "RESERVATION_RELEASED")


def test_a_reservation_arriving_after_its_orders_release_is_refused_and_holds_nothing(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    """The order service gave up on ReserveStock(LATE-1) at its deadline and compensated first; the reservation,
    still waiting for a connection, ran after: its units would be held for an order that never exists, for 2 hours."""
    product_id = shelf.product("限量手机", stock=1)
    [sku_id] = shelf.sku_ids(product_id)
    ref = product_pb2.ReservationRef(order_no="LATE-1")

    released = stub.ReleaseReservation(ref).status
    late = outcome(lambda: reserve(stub, "LATE-1", (sku_id, 1)))
    real_buyer = outcome(lambda: reserve(stub, "REAL-1", (sku_id, 1)))

    assert (released, late, real_buyer) == ("NONE", "RESERVATION_RELEASED", "ok")
    assert (shelf.stock(product_id), reserved_units(pg_engine)) == ([0], (1, 1))  # REAL-1's unit only
    assert ledger_kinds(pg_engine, sku_id) == {("initial", 1, 0): 1, ("reserve", -1, 1): 1}


def test_reservations_racing_their_releases_leave_no_unit_held(
        shelf: Shelf, stub: product_pb2_grpc.ProductServiceStub, pg_engine: Engine) -> None:
    """Whichever of an order's reservation and release takes the order's lock first, nothing stays held: a
    release after the reservation puts its units back, a reservation after the release is refused."""
    product_id = shelf.product("手机", stock=20)
    [sku_id] = shelf.sku_ids(product_id)
    orders = [f"RACE-{n}" for n in range(20)]

    def reserve_and_release(order_no: str) -> set[str]:
        ref = product_pb2.ReservationRef(order_no=order_no)
        with ThreadPoolExecutor(max_workers=2) as pair:
            reserved = pair.submit(outcome, lambda: reserve(stub, order_no, (sku_id, 1)))
            released = pair.submit(lambda: stub.ReleaseReservation(ref).status)
            return {reserved.result(), released.result()}

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(reserve_and_release, orders))

    assert {frozenset(o) for o in outcomes} <= {frozenset({"ok", "RELEASED"}),
                                                frozenset({"RESERVATION_RELEASED", "NONE"})}, outcomes
    with pg_engine.connect() as conn:
        held = conn.execute(select(func.count()).select_from(reservations)
                            .where(reservations.c.status == "RESERVED")).scalar_one()
    assert (shelf.stock(product_id), held) == ([20], 0)


def test_the_sweep_releases_expired_reservations_and_leaves_live_ones(shelf: Shelf, pg_uow: UowFactory) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(pg_uow(), order_no="OLD", lines=[StockLine(sku_id, 2)], now=T0)
    service.reserve_stock(pg_uow(), order_no="LIVE", lines=[StockLine(sku_id, 3)], now=T0 + timedelta(hours=1))

    orders = FakeOrders()  # OLD: a submit that died after reserving
    released = service.release_expired_reservations(pg_uow, orders, now=T0 + RESERVATION_TTL + timedelta(seconds=1))
    again = service.release_expired_reservations(pg_uow, orders, now=T0 + RESERVATION_TTL + timedelta(seconds=1))

    assert (released, again, shelf.stock(product_id)) == (1, 0, [7])


def test_the_serve_role_sweeps_expired_reservations_by_itself(shelf: Shelf, pg_engine: Engine, jwt_keys: JwtKeys,
                                                              order_uow: Callable[[], SqlOrderUnitOfWork],
                                                              order_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep is a job of the product service (it used to be a CLI command nothing ran): once the reservation's
    TTL has passed, units held for an order never placed (the order service, asked as the product service, does
    not know it) go back on sale and count once; those of an order paid (its order-paid late) are sold."""
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    place_order(order_uow, "PAID-LATE", paid=True)
    service.reserve_stock(shelf.uow(), order_no="PAID-LATE", lines=[StockLine(sku_id, 3)], now=T0 - timedelta(minutes=1))
    service.reserve_stock(shelf.uow(), order_no="DIED", lines=[StockLine(sku_id, 4)], now=T0)  # hours ago
    monkeypatch.setenv("PRODUCT_RESERVATION_SWEEP_SECONDS", "0.05")
    monkeypatch.setenv("ORDER_GRPC_TARGET", order_target)
    monkeypatch.setenv("SERVICE_TOKEN", service_token(jwt_keys, "product"))  # read where used (service_identity)
    settings = dataclasses.replace(
        ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)}),
        database_url=pg_engine.url.render_as_string(hide_password=False))
    expired_before = REGISTRY.get_sample_value("mall_stock_reservations_expired_total")
    stop = threading.Event()
    sweeper = threading.Thread(target=build_app(settings).jobs["reservation-expiry"], args=(stop,))
    sweeper.start()
    try:
        deadline = time.monotonic() + 20
        while shelf.stock(product_id) != [7]:  # PAID-LATE, first in the batch, is settled before DIED
            assert time.monotonic() < deadline, "the expired reservation was not released"
            time.sleep(0.02)
    finally:
        stop.set()
        sweeper.join(timeout=10)

    with pg_engine.connect() as db:
        moves = db.execute(select(stock_movements.c.reference, stock_movements.c.kind, stock_movements.c.available,
                                  stock_movements.c.reserved).where(stock_movements.c.reference.in_(["DIED", "PAID-LATE"]))
                           .order_by(stock_movements.c.id)).all()
    assert moves == [("PAID-LATE", "reserve", -3, 3), ("DIED", "reserve", -4, 4), ("PAID-LATE", "confirm", 0, -3),
                     ("DIED", "expire", 4, -4)]
    assert REGISTRY.get_sample_value("mall_stock_reservations_expired_total") - expired_before == 1


def test_concurrent_stock_adjustments_never_lose_an_update(shelf: Shelf, pg_uow: UowFactory) -> None:
    product_id = shelf.product("手机", stock=100)
    [sku_id] = shelf.sku_ids(product_id)

    def adjust(delta: int) -> None:
        service.adjust_stock(pg_uow(), actor_id=7, product_id=product_id, sku_id=sku_id, delta=delta)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(adjust, [5, -3] * 20))

    assert shelf.stock(product_id) == [140]
