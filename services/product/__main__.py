"""Entry point: python -m services.product [all|serve|relay|consume|migrate|seed|sweep-reservations]."""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from pathlib import Path

from mall.product.v1 import product_pb2, product_pb2_grpc
from sqlalchemy import Engine

from services.common.auth import service_identity
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings, var_dir
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.discovery import Discovery
from services.common.grpc_server import registration
from services.common.orders import GrpcOrders, Orders
from services.common.runtime import ServiceApp, every, main, round_budget
from services.product import search, service
from services.product.consumers import handlers
from services.product.db import OWN_ROWS, SqlProductUnitOfWork, start_mappers
from services.product.grpc_api import ProductServicer

MIGRATIONS = Path(__file__).parent / "migrations"


def event_consumers(base: ServiceSettings, engine: Engine, orders: Orders | None = None) -> list[EventConsumer]:
    """The consume role: stock of paid, cancelled, completed and returned orders (the order-paid handler asks the order
    service, as the product service, about units it would release); no search dictionary."""
    start_mappers()
    return [EventConsumer("product", functools.partial(SqlProductUnitOfWork, engine, "product"), base.kafka,
                          handlers(orders or order_service(base)))]


def build_app(base: ServiceSettings) -> ServiceApp:
    start_mappers()
    # jieba takes a second or more to load its dictionary: not at import, not in the first search.
    threading.Thread(target=search.warm_up, name="jieba-warm-up", daemon=True).start()
    engine = make_engine(base.database_url, base.database_timeouts)
    uow = functools.partial(SqlProductUnitOfWork, engine, "product")
    sweep_seconds = Env().float("PRODUCT_RESERVATION_SWEEP_SECONDS", 60.0)
    orders = order_service(base)
    # A round of the sweep goes on for JOB_ROUND_BUDGET_SECONDS, then past it by at most a page's read and its
    # question to the order service, or an order's settling.
    budget = round_budget(base.job_round_budget_seconds, row_calls_seconds=orders.clients.timeout)
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(product_pb2, product_pb2_grpc, "ProductService", ProductServicer(uow))],
                      consumers=event_consumers(base, engine, orders), own_rows=OWN_ROWS,
                      # once the reservation's TTL has passed, units held for an order that was never placed (its
                      # submit died after reserving) or whose order-cancelled never came go back on sale, and those
                      # of an order paid whose order-paid is late are sold (the order service is asked which)
                      jobs={"reservation-expiry": every(sweep_seconds, "reservation expiry",
                                                        lambda: service.release_expired_reservations(
                                                            uow, orders, budget=budget), budget=budget)})


def order_service(base: ServiceSettings) -> GrpcOrders:
    """The order service as the reservation sweep asks it, as the product service itself (SERVICE_TOKEN)."""
    env = Env()
    clients = ServiceClients(Discovery(base.consul_http_addr, env),
                             env.int("PRODUCT_GRPC_TIMEOUT_MS", 5000) / 1000, service_token=service_identity(base))
    return GrpcOrders(clients)


def media_dir() -> Path:
    """MEDIA_DIR (default $MINIMALL_VAR/media, var/media): where catalogue images are written and the gateway serves
    them from."""
    env = Env()
    return Path(env.str("MEDIA_DIR", "") or var_dir(env) / "media")


def seed_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    from services.product.seed import seed_catalog  # Pillow and tqdm load only for this command

    start_mappers()
    engine = make_engine(base.database_url, base.database_timeouts)
    created = seed_catalog(functools.partial(SqlProductUnitOfWork, engine, "product"), media_dir() / "catalog",
                           progress=not args.quiet)
    print(f"demo catalogue ready ({created} products created)")
    return 0


def sweep_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    """Release expired stock reservations once (the serve role does it every PRODUCT_RESERVATION_SWEEP_SECONDS)."""
    start_mappers()
    engine = make_engine(base.database_url, base.database_timeouts)
    released = service.release_expired_reservations(functools.partial(SqlProductUnitOfWork, engine, "product"),
                                                    order_service(base))
    print(f"released the expired reservations of {released} orders")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="seed: no progress bar")


if __name__ == "__main__":
    sys.exit(main("product", build_app, MIGRATIONS, commands={"seed": seed_command, "sweep-reservations": sweep_command},
                  add_arguments=add_arguments, consumers=event_consumers))
