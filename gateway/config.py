"""Gateway settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import SERVICES, ConfigError, Env, read_key, read_optional_key

# /readyz waits for these unless GATEWAY_READY_REQUIRES says otherwise: no login without user.
DEFAULT_READY_REQUIRES = ("user",)


@dataclass(frozen=True)
class GatewaySettings:
    jwt_public_key_pem: bytes
    consul_http_addr: str | None
    grpc_timeout_seconds: float
    log_level: str
    environ: Mapping[str, str]  # for static service addresses (USER_GRPC_TARGET, ...)
    redis_url: str | None = None  # shared rate-limit counters; per-process counters without it
    rate_limit_secret: str | None = field(default=None, repr=False)  # keys Redis bucket names
    proxy_hops: int = 0           # trusted reverse proxies in front (X-Forwarded-For hops to believe)
    rate_limit_scale: float = 1.0  # multiplies every rate limit (e.g. 10 for a load test); > 0
    # SMS codes the gateway may have the user service send in any 24 hours, all clients together (each one is
    # paid for); past it POST /auth/sms-codes answers 429 SMS_DAILY_BUDGET_EXHAUSTED.
    sms_daily_budget: int = 10_000
    # Real-name checks (each a paid call to the identity provider) the gateway may pass on in any 24 hours, all
    # accounts together; past it POST /me/identity answers 429 IDENTITY_DAILY_BUDGET_EXHAUSTED.
    identity_daily_budget: int = 1_000
    # Services whose absence makes /readyz fail. Only user by default (no login without it): one
    # other service down must not take every gateway out of rotation. make run asks for all five.
    ready_requires: tuple[str, ...] = DEFAULT_READY_REQUIRES
    jwt_previous_public_key_pem: bytes | None = None  # during a key rotation only
    # How long a worker may serve a catalogue reply from memory (gateway/catalog_cache.py); 0 turns it off.
    catalog_cache_seconds: float = 1.0
    catalog_cache_following_seconds: float = 10.0  # ... while the worker follows product-changed events
    catalog_version_check_seconds: float = 0.1  # how often a worker asks Redis for the catalogue version

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(environ)
        return cls(
            jwt_public_key_pem=read_key(env, "JWT_PUBLIC_KEY_FILE", "var/keys/jwt-public.pem"),
            consul_http_addr=env.optional("CONSUL_HTTP_ADDR"),
            grpc_timeout_seconds=env.int("GATEWAY_GRPC_TIMEOUT_MS", 5000) / 1000,
            log_level=env.str("LOG_LEVEL", "INFO"),
            redis_url=_redis_for_workers(env),
            rate_limit_secret=_secret_with_redis(env),
            proxy_hops=env.int("GATEWAY_PROXY_HOPS", 0),
            rate_limit_scale=_positive_float(env, "GATEWAY_RATE_LIMIT_SCALE", 1.0),
            sms_daily_budget=env.int_within("GATEWAY_SMS_DAILY_BUDGET", 10_000, 1, 10_000_000),
            identity_daily_budget=env.int_within("GATEWAY_IDENTITY_DAILY_BUDGET", 1_000, 1, 10_000_000),
            ready_requires=_services(env, "GATEWAY_READY_REQUIRES"),
            jwt_previous_public_key_pem=read_optional_key(env, "JWT_PREVIOUS_PUBLIC_KEY_FILE"),
            catalog_cache_seconds=env.int("CATALOG_CACHE_TTL_MS", 1000) / 1000,
            catalog_cache_following_seconds=env.int("CATALOG_CACHE_FOLLOWING_TTL_MS", 10_000) / 1000,
            catalog_version_check_seconds=env.int("CATALOG_VERSION_CHECK_MS", 100) / 1000,
            environ=env.environ,
        )


def _redis_for_workers(env: Env) -> str | None:
    """REDIS_URL; required for more than one gunicorn worker (gateway/gunicorn.conf.py): without it each worker
    would know only the sessions that ended through itself (gateway/sessions.py)."""
    url = env.optional("REDIS_URL")
    if not url and env.int("GATEWAY_WORKERS", 1) > 1:
        raise ConfigError("GATEWAY_WORKERS above 1 needs REDIS_URL: the workers share which sessions ended through it")
    return url


def _secret_with_redis(env: Env) -> str | None:
    secret = env.optional("GATEWAY_RATE_LIMIT_SECRET")
    if env.optional("REDIS_URL") and not (secret and len(secret) >= 32):
        raise ConfigError("with REDIS_URL, GATEWAY_RATE_LIMIT_SECRET must be set (32+ characters, the same "
                          "in every gateway replica): it keys the rate-limit bucket names kept in Redis")
    return secret


def _positive_float(env: Env, name: str, default: float) -> float:
    value = env.float(name, default)
    if value == 0:
        raise ConfigError(f"{name} must be a number greater than 0, got {env.str(name)!r}")
    return value


def _services(env: Env, name: str) -> tuple[str, ...]:
    raw = env.environ.get(name)
    if raw is None:
        return DEFAULT_READY_REQUIRES
    chosen = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise ConfigError(f"{name} names unknown services: {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    return chosen
