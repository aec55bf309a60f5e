"""Entry point: python -m services.user [all|serve|relay|consume|migrate|create-admin]."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from mall.user.v1 import user_pb2, user_pb2_grpc

from services.common.config import ServiceSettings
from services.common.db import make_engine
from services.common.errors import DomainError
from services.common.grpc_server import registration
from services.common.logs import mask_phone
from services.common.runtime import ServiceApp, main
from services.user import service
from services.user.config import UserSettings
from services.user.db import SqlUserUnitOfWork, start_mappers
from services.user.grpc_api import UserServicer
from services.user.passwords import Passwords
from services.user.sms import make_sms_sender
from services.user.tokens import TokenIssuer
from services.user.wechat import WechatAuth

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(base: ServiceSettings) -> ServiceApp:
    settings = UserSettings.from_env(base)
    start_mappers()
    engine = make_engine(base.database_url)
    issuer = TokenIssuer(settings.jwt_private_key_pem, access_ttl_seconds=settings.access_token_ttl_seconds,
                         refresh_ttl_seconds=settings.refresh_token_ttl_seconds)
    servicer = UserServicer(functools.partial(SqlUserUnitOfWork, engine, "user"),
                            make_sms_sender(settings.sms_provider, settings.aliyun_sms), issuer, Passwords(),
                            wechat=WechatAuth(settings.wechat) if settings.wechat else None)
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(user_pb2, user_pb2_grpc, "UserService", servicer)])


def create_admin_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("ADMIN_PASSWORD", "")
    if not args.phone or not password:
        print("create-admin needs --phone, and the password in ADMIN_PASSWORD (or --password)", file=sys.stderr)
        return 2
    start_mappers()
    try:
        user = service.create_admin(SqlUserUnitOfWork(make_engine(base.database_url), "user"), Passwords(),
                                    phone=args.phone, password=password)
    except DomainError as exc:
        print(f"create-admin: {exc.message}", file=sys.stderr)
        return 2
    print(f"admin {mask_phone(user.phone)} (id {user.id}) is ready")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", help="create-admin: the admin's phone number")
    parser.add_argument("--password", help="create-admin: the admin's password (prefer ADMIN_PASSWORD: argv is public)")


if __name__ == "__main__":
    sys.exit(main("user", build_app, MIGRATIONS, commands={"create-admin": create_admin_command},
                  add_arguments=add_arguments))
