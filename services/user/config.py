"""User service settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import DEV_ENVIRONMENTS, ConfigError, Env, ServiceSettings, read_key

SMS_PROVIDERS = ("console",)


@dataclass(frozen=True)
class UserSettings:
    base: ServiceSettings
    jwt_private_key_pem: bytes
    sms_provider: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int

    @classmethod
    def from_env(cls, base: ServiceSettings, environ: Mapping[str, str] | None = None) -> UserSettings:
        env = Env(environ)
        # No default on purpose: a forgotten variable must not turn on the provider that reveals codes.
        sms_provider = env.str("SMS_PROVIDER")
        if sms_provider not in SMS_PROVIDERS:
            raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {sms_provider!r}")
        if sms_provider == "console" and base.environment not in DEV_ENVIRONMENTS:
            raise ConfigError("SMS_PROVIDER=console hands codes to the caller; it runs only with MINIMALL_ENV=dev or test")
        return cls(
            base=base,
            jwt_private_key_pem=read_key(env, "JWT_PRIVATE_KEY_FILE", "var/keys/jwt-private.pem"),
            sms_provider=sms_provider,
            access_token_ttl_seconds=env.int("ACCESS_TOKEN_TTL_SECONDS", 900),
            refresh_token_ttl_seconds=env.int("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
        )
