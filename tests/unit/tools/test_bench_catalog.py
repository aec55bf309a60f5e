"""The catalogue benchmark starts a gateway that accepts its settings, with Redis or without (BENCH_REDIS_URL=none)."""

from __future__ import annotations

from pathlib import Path

from bench.catalog import gateway_environment
from gateway.config import GatewaySettings


def test_without_redis_the_gateway_gets_one_worker_and_starts(tmp_path: Path, public_pem: bytes) -> None:
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(public_pem)
    environ = gateway_environment("none", 2, 8)

    settings = GatewaySettings.from_env({**environ, "JWT_PUBLIC_KEY_FILE": str(key)})

    assert (environ["GATEWAY_WORKERS"], settings.redis_url) == ("1", None)


def test_with_redis_the_gateway_keeps_its_workers_and_starts(tmp_path: Path, public_pem: bytes) -> None:
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(public_pem)
    environ = gateway_environment("redis://127.0.0.1:6379/14", 2, 8)

    settings = GatewaySettings.from_env({**environ, "JWT_PUBLIC_KEY_FILE": str(key)})

    assert (environ["GATEWAY_WORKERS"], settings.redis_url) == ("2", "redis://127.0.0.1:6379/14")
