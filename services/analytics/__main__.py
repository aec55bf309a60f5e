"""Entry point: python -m services.analytics [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.analytics.grpc_api import AnalyticsServicer
from services.common.config import ServiceSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.grpc_server import registration
from services.common.runtime import ServiceApp, main

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(base: ServiceSettings) -> ServiceApp:
    engine = make_engine(base.database_url)
    uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
    servicer = AnalyticsServicer(uow)
    return ServiceApp(
        settings=base, engine=engine,
        registrations=[registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService", servicer)],
        consumers=[EventConsumer("analytics", uow, base.kafka, HANDLERS)],
    )


if __name__ == "__main__":
    sys.exit(main("analytics", build_app, MIGRATIONS))
