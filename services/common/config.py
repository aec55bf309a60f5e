"""Settings read from environment variables (12-factor); one object per process, no I/O at import."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("user", "product", "order", "member", "analytics")
GRPC_PORTS = {"user": 50051, "product": 50052, "order": 50053, "member": 50054, "analytics": 50055}
METRICS_PORTS = {"user": 9101, "product": 9102, "order": 9103, "member": 9104, "analytics": 9105}


ENVIRONMENTS = ("prod", "staging", "dev", "test")
DEV_ENVIRONMENTS = ("dev", "test")


class ConfigError(ValueError):
    """An environment variable is missing or malformed."""


class Env:
    """Typed reads of environment variables with clear errors."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def str(self, name: str, default: str | None = None) -> str:
        value = self.environ.get(name, default)
        if value is None or value == "":
            if default is not None:
                return default
            raise ConfigError(f"{name} must be set")
        return value

    def int(self, name: str, default: int) -> int:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        """A finite number >= 0 (seconds, factors...)."""
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0, got {raw!r}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")

    def optional(self, name: str) -> str | None:
        return self.environ.get(name) or None


def grpc_target(env: Env, service: str) -> str:
    """Static address of a service's gRPC server (Kubernetes DNS name or host:port)."""
    return env.str(f"{service.upper()}_GRPC_TARGET", f"127.0.0.1:{GRPC_PORTS[service]}")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    # tansu completes a consumer-group join only after the rebalance timeout, which kafka-python
    # sets to max_poll_interval_ms: keep it small in dev and tests, large in production.
    max_poll_interval_ms: int
    topic_prefix: str
    request_timeout_ms: int

    @classmethod
    def from_env(cls, env: Env) -> KafkaSettings:
        return cls(
            bootstrap_servers=env.str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            max_poll_interval_ms=env.int("KAFKA_MAX_POLL_INTERVAL_MS", 300_000),
            topic_prefix=env.str("KAFKA_TOPIC_PREFIX", ""),
            request_timeout_ms=env.int("KAFKA_REQUEST_TIMEOUT_MS", 30_000),
        )

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}{event_type}"


@dataclass(frozen=True)
class ServiceSettings:
    """What every service process needs; a service's own settings hold one of these as `base`."""

    service: str
    environment: str  # "prod" (default), "staging", "dev" or "test": dev-only conveniences need dev or test
    database_url: str
    grpc_listen: str
    metrics_port: int
    kafka: KafkaSettings
    jwt_public_key_pem: bytes
    consul_http_addr: str | None
    advertise_host: str
    log_level: str
    shutdown_delay_seconds: float = 0.0  # after NOT_SERVING, before refusing calls (Kubernetes: ~5)
    shutdown_grace_seconds: float = 10.0  # for calls in flight to finish

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(environ)
        prefix = service.upper()
        environment = env.str("MINIMALL_ENV", "prod")
        if environment not in ENVIRONMENTS:
            raise ConfigError(f"MINIMALL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
        return cls(
            service=service,
            environment=environment,
            database_url=env.str(f"{prefix}_DATABASE_URL", f"sqlite:///var/{service}.db"),
            grpc_listen=env.str(f"{prefix}_GRPC_LISTEN", f"127.0.0.1:{GRPC_PORTS[service]}"),
            metrics_port=env.int(f"{prefix}_METRICS_PORT", METRICS_PORTS[service]),
            kafka=KafkaSettings.from_env(env),
            jwt_public_key_pem=read_key(env, "JWT_PUBLIC_KEY_FILE", "var/keys/jwt-public.pem"),
            consul_http_addr=env.optional("CONSUL_HTTP_ADDR"),
            advertise_host=env.str(f"{prefix}_ADVERTISE_HOST", env.str("POD_IP", "127.0.0.1")),
            log_level=env.str("LOG_LEVEL", "INFO"),
            shutdown_delay_seconds=env.float("SHUTDOWN_DELAY_SECONDS", 0.0),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", 10.0),
        )


def read_key(env: Env, name: str, default_path: str | None = None) -> bytes:
    """Read a PEM key from the file an environment variable names (required when there is no default)."""
    path = Path(env.str(name, default_path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read key file {path}: {exc.strerror}") from None
