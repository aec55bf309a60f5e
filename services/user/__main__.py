"""Entry point: python -m services.user [all|serve|relay|consume|migrate|create-admin|create-staff|service-token]."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mall.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy import Engine

from services.common.auth import STAFF_ROLES, Role
from services.common.config import SERVICES, ConfigError, Env, ServiceSettings, read_key
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.errors import DomainError
from services.common.grpc_server import registration
from services.common.logs import mask_phone
from services.common.runtime import ServiceApp, main
from services.user import service
from services.user.config import UserSettings
from services.user.consumers import HANDLERS
from services.user.db import OWN_ROWS, SqlUserUnitOfWork, start_mappers
from services.user.grpc_api import UserServicer
from services.user.identity import IdentityVault, make_identity_checker
from services.user.passwords import Passwords
from services.user.sms import make_sms_sender
from services.user.tokens import TokenIssuer, mint_service_token
from services.user.wechat import WechatAuth

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_TOKEN_DAYS = 90


def event_consumers(base: ServiceSettings, engine: Engine) -> list[EventConsumer]:
    """The consume role: browsing history from product-viewed, nothing of the service's keys or providers."""
    start_mappers()
    return [EventConsumer("user", functools.partial(SqlUserUnitOfWork, engine, "user"), base.kafka, HANDLERS)]


def build_app(base: ServiceSettings) -> ServiceApp:
    settings = UserSettings.from_env(base)
    start_mappers()
    engine = make_engine(base.database_url, base.database_timeouts)
    issuer = TokenIssuer(settings.jwt_private_key_pem, access_ttl_seconds=settings.access_token_ttl_seconds,
                         refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
                         staff_session_max_hours=settings.staff_session_max_hours,
                         refresh_reuse_grace_seconds=settings.refresh_reuse_grace_seconds)
    uow = functools.partial(SqlUserUnitOfWork, engine, "user")
    servicer = UserServicer(uow, make_sms_sender(settings.sms_provider, settings.aliyun_sms), issuer, Passwords(),
                            make_identity_checker(settings.identity_provider, settings.realname),
                            IdentityVault(settings.identity_keys),
                            wechat=WechatAuth(settings.wechat) if settings.wechat else None)
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(user_pb2, user_pb2_grpc, "UserService", servicer)],
                      consumers=event_consumers(base, engine), own_rows=OWN_ROWS)


def create_admin_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    return _create_staff(base, args, "create-admin", Role.ADMIN)


def create_staff_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    if args.role not in STAFF_ROLES:
        print(f"create-staff needs --role, one of {', '.join(sorted(STAFF_ROLES))}", file=sys.stderr)
        return 2
    return _create_staff(base, args, "create-staff", args.role)


def _create_staff(base: ServiceSettings, args: argparse.Namespace, command: str, role: str) -> int:
    password = args.password or os.environ.get("ADMIN_PASSWORD", "")
    if not args.phone or not password:
        print(f"{command} needs --phone, and the password in ADMIN_PASSWORD (or --password)", file=sys.stderr)
        return 2
    start_mappers()
    try:
        engine = make_engine(base.database_url, base.database_timeouts)
        user = service.create_staff(SqlUserUnitOfWork(engine, "user"), Passwords(),
                                    phone=args.phone, role=role, password=password)
    except DomainError as exc:
        print(f"{command}: {exc.message}", file=sys.stderr)
        return 2
    print(f"{role} {mask_phone(user.phone)} (id {user.id}) is ready")
    return 0


def service_token_command(base: ServiceSettings, args: argparse.Namespace) -> int:
    """Print a service token for `--service` (signed with JWT_PRIVATE_KEY_FILE) to stdout, for its Secret."""
    if args.service not in SERVICES or args.ttl_days <= 0:
        print(f"service-token needs --service, one of {', '.join(SERVICES)}, and --ttl-days > 0", file=sys.stderr)
        return 2
    try:
        key = read_key(Env(), "JWT_PRIVATE_KEY_FILE", "var/keys/jwt-private.pem")
    except ConfigError as exc:
        print(f"service-token: {exc}", file=sys.stderr)
        return 2
    # stdout only, never the log: `... service-token --service order | kubectl create secret ... --from-file=...`
    print(mint_service_token(key, args.service, now=datetime.now(UTC), ttl=timedelta(days=args.ttl_days)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", help="create-admin, create-staff: the staff member's phone number")
    parser.add_argument("--role", help="create-staff: " + ", ".join(sorted(STAFF_ROLES)))
    parser.add_argument("--password",
                        help="create-admin, create-staff: the password (prefer ADMIN_PASSWORD: argv is public)")
    parser.add_argument("--service", help="service-token: the service it is for, " + ", ".join(SERVICES))
    parser.add_argument("--ttl-days", type=int, default=SERVICE_TOKEN_DAYS,
                        help=f"service-token: days until it expires (default {SERVICE_TOKEN_DAYS})")


if __name__ == "__main__":
    sys.exit(main("user", build_app, MIGRATIONS, commands={"create-admin": create_admin_command,
                                                           "create-staff": create_staff_command,
                                                           "service-token": service_token_command},
                  add_arguments=add_arguments, consumers=event_consumers))
