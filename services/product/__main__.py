"""Entry point: python -m services.product [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import sys
from pathlib import Path

from mall.product.v1 import product_pb2, product_pb2_grpc

from services.common.config import ServiceSettings
from services.common.db import make_engine
from services.common.grpc_server import registration
from services.common.runtime import ServiceApp, main

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(base: ServiceSettings) -> ServiceApp:
    servicer = product_pb2_grpc.ProductServiceServicer()  # no RPCs yet: health, reflection, outbox relay run already
    return ServiceApp(settings=base, engine=make_engine(base.database_url),
                      registrations=[registration(product_pb2, product_pb2_grpc, "ProductService", servicer)])


if __name__ == "__main__":
    sys.exit(main("product", build_app, MIGRATIONS))
