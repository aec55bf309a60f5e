"""PostgreSQL cut away mid-traffic (a TCP proxy the test controls): 503s in the error format, no partial
writes, and the service serves again by itself once the database is back.

The product service runs in-process on a real PostgreSQL database reached through the proxy; the
gateway is the real app, calling it over gRPC.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from mall.product.v1 import product_pb2, product_pb2_grpc
from sqlalchemy import Engine, func, select

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.db import make_engine
from services.common.grpc_server import create_server, registration
from services.product.db import SqlProductUnitOfWork, products, start_mappers
from services.product.grpc_api import ProductServicer
from tests.fixtures.keys import JwtKeys
from tests.fixtures.shop import staff_headers
from tests.fixtures.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


@dataclass
class CutAway:
    gateway: FlaskClient
    database: TcpProxy
    admin: dict[str, str]
    direct: Engine  # straight to PostgreSQL, for the test's own look at what was written


@pytest.fixture
def setup(service_engine: Callable[[str], Engine], jwt_keys: JwtKeys) -> Iterator[CutAway]:
    direct = service_engine("product")
    proxy = TcpProxy(direct.url.port or 5432).start()
    engine = make_engine(direct.url.set(port=proxy.port).render_as_string(hide_password=False))
    start_mappers()
    settings = ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                    "PRODUCT_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(
        product_pb2, product_pb2_grpc, "ProductService",
        ProductServicer(functools.partial(SqlProductUnitOfWork, engine, "product")))])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=30, log_level="WARNING",
                                     environ={"PRODUCT_GRPC_TARGET": f"127.0.0.1:{port}"}))
    yield CutAway(app.test_client(), proxy, staff_headers(jwt_keys.private_pem, ["admin"]), direct)
    server.stop(grace=None)
    engine.dispose()
    proxy.stop()


def new_product(name: str) -> dict[str, object]:
    return {"name": name, "subtitle": "", "category_id": 1, "brand_id": 1, "description": "", "images": [],
            "params": [], "specs": [], "skus": [{"spec": {}, "price_fen": 990, "stock": 3}]}


def product_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(products.c.name).order_by(products.c.id)).scalars())


def test_requests_during_a_database_outage_get_503_change_nothing_and_the_service_recovers(setup: CutAway) -> None:
    with setup.direct.begin() as conn:  # the catalogue's parents, straight into the database
        conn.exec_driver_sql("INSERT INTO categories (id, name, icon, sort) VALUES (1, '水杯', '', 0)")
        conn.exec_driver_sql("INSERT INTO brands (id, name, logo) VALUES (1, '象印', '')")
    before = setup.gateway.post("/api/v1/admin/products", json=new_product("保温杯 甲"), headers=setup.admin)
    assert before.status_code == 201, before.get_json()

    setup.database.cut()
    write = setup.gateway.post("/api/v1/admin/products", json=new_product("保温杯 乙"), headers=setup.admin)
    read = setup.gateway.get(f"/api/v1/admin/products/{before.get_json()['id']}", headers=setup.admin)
    setup.database.restore()

    assert (write.status_code, write.get_json()["error"]["code"]) == (503, "DATABASE_UNAVAILABLE")
    assert (read.status_code, sorted(read.get_json()["error"])) == (503, ["code", "message", "request_id"])
    assert product_names(setup.direct) == ["保温杯 甲"]  # the write during the cut left nothing behind

    deadline = time.monotonic() + 30  # the pool drops its dead connections and opens new ones unaided
    while (after := setup.gateway.post("/api/v1/admin/products", json=new_product("保温杯 丙"),
                                       headers=setup.admin)).status_code == 503:
        assert time.monotonic() < deadline, "the service did not recover after the database came back"
        time.sleep(0.2)
    assert after.status_code == 201, after.get_json()
    assert product_names(setup.direct) == ["保温杯 甲", "保温杯 丙"]
    with setup.direct.connect() as conn:
        assert conn.execute(select(func.count()).select_from(products)).scalar_one() == 2
