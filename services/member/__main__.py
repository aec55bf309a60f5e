"""Entry point: python -m services.member [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from mall.member.v1 import member_pb2, member_pb2_grpc

from services.common.config import ServiceSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.grpc_server import registration
from services.common.runtime import ServiceApp, main
from services.member.channels import SimulatedPayment, SimulatedPayout
from services.member.consumers import HANDLERS
from services.member.db import SqlMemberUnitOfWork, start_mappers
from services.member.grpc_api import MemberServicer

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(base: ServiceSettings) -> ServiceApp:
    start_mappers()
    engine = make_engine(base.database_url)
    uow = functools.partial(SqlMemberUnitOfWork, engine, "member")
    # Payouts and recharge payments are simulated until the channel adapters exist.
    servicer = MemberServicer(uow, SimulatedPayout(), SimulatedPayment())
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(member_pb2, member_pb2_grpc, "MemberService", servicer)],
                      consumers=[EventConsumer("member", uow, base.kafka, HANDLERS)])


if __name__ == "__main__":
    sys.exit(main("member", build_app, MIGRATIONS))
