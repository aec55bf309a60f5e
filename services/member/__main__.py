"""Entry point: python -m services.member [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import sys
from pathlib import Path

from mall.member.v1 import member_pb2, member_pb2_grpc

from services.common.config import ServiceSettings
from services.common.db import make_engine
from services.common.grpc_server import registration
from services.common.runtime import ServiceApp, main

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(base: ServiceSettings) -> ServiceApp:
    servicer = member_pb2_grpc.MemberServiceServicer()  # no RPCs yet: health, reflection, outbox relay run already
    return ServiceApp(settings=base, engine=make_engine(base.database_url),
                      registrations=[registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])


if __name__ == "__main__":
    sys.exit(main("member", build_app, MIGRATIONS))
