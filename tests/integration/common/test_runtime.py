"""A whole service process's roles (serve + relay + consume) running and shutting down gracefully."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine

from services.analytics.__main__ import build_app
from services.common.config import KafkaSettings, ServiceSettings
from services.common.devbroker import free_port
from services.common.runtime import ROLES, run_roles
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def health(port: int) -> int | None:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
    except grpc.RpcError:
        return None  # not listening


def wait_until(condition: Callable[[], bool], timeout_seconds: float = 20) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_service_serves_then_drains_on_stop(service_engine: Callable[[str], Engine], migrated_database,  # type: ignore[no-untyped-def]
                                              kafka_settings: KafkaSettings, jwt_keys: JwtKeys) -> None:
    service_engine("analytics")  # a clean, migrated database
    port = free_port()
    settings = dataclasses.replace(
        ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)}),
        database_url=migrated_database("analytics"), grpc_listen=f"127.0.0.1:{port}", kafka=kafka_settings,
        shutdown_delay_seconds=1.0, shutdown_grace_seconds=1.0)
    stop = threading.Event()
    process = threading.Thread(target=run_roles, args=(build_app(settings), ROLES, stop))
    process.start()
    try:
        wait_until(lambda: health(port) == SERVING)

        stop.set()
        wait_until(lambda: health(port) == NOT_SERVING)  # draining: still answering, no longer serving
    finally:
        stop.set()
        process.join(timeout=60)

    assert not process.is_alive()
    assert health(port) is None
