"""User service settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import DEV_ENVIRONMENTS, ConfigError, Env, ServiceSettings, read_key
from services.user.identity import IdentityKeys

SMS_PROVIDERS = ("console",)
# Real-name providers; "format-only" (dev/test only) accepts whatever passes the format checks.
IDENTITY_PROVIDERS = ("format-only",)


@dataclass(frozen=True)
class UserSettings:
    base: ServiceSettings
    jwt_private_key_pem: bytes
    sms_provider: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    identity_provider: str
    identity_keys: IdentityKeys = field(repr=False)

    @classmethod
    def from_env(cls, base: ServiceSettings, environ: Mapping[str, str] | None = None) -> UserSettings:
        env = Env(environ)
        # No default on purpose: a forgotten variable must not turn on the provider that reveals codes.
        sms_provider = env.str("SMS_PROVIDER")
        if sms_provider not in SMS_PROVIDERS:
            raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {sms_provider!r}")
        if sms_provider == "console" and base.environment not in DEV_ENVIRONMENTS:
            raise ConfigError("SMS_PROVIDER=console hands codes to the caller; it runs only with MINIMALL_ENV=dev or test")
        jwt_private_key_pem = read_key(env, "JWT_PRIVATE_KEY_FILE", "var/keys/jwt-private.pem")
        return cls(
            base=base,
            jwt_private_key_pem=jwt_private_key_pem,
            sms_provider=sms_provider,
            access_token_ttl_seconds=env.int("ACCESS_TOKEN_TTL_SECONDS", 900),
            refresh_token_ttl_seconds=env.int("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
            identity_provider=read_identity_provider(env, base.environment),
            identity_keys=read_identity_keys(env, base.environment, jwt_private_key_pem),
        )


def read_identity_provider(env: Env, environment: str) -> str:
    """IDENTITY_PROVIDER: defaults to format-only in dev and test, required (and real) elsewhere."""
    dev = environment in DEV_ENVIRONMENTS
    # Outside dev and test there is no default: a forgotten variable must not verify everyone.
    provider = env.str("IDENTITY_PROVIDER", "format-only" if dev else None)
    if provider not in IDENTITY_PROVIDERS:
        raise ConfigError(f"IDENTITY_PROVIDER must be one of {', '.join(IDENTITY_PROVIDERS)}, got {provider!r}")
    if provider == "format-only" and not dev:
        raise ConfigError("IDENTITY_PROVIDER=format-only verifies anyone; it runs only with MINIMALL_ENV=dev or test")
    return provider


def read_identity_keys(env: Env, environment: str, jwt_private_key_pem: bytes) -> IdentityKeys:
    """IDENTITY_KEYS and IDENTITY_FINGERPRINT_KEY; in dev and test, keys derived from the JWT key when unset."""
    spec = env.optional("IDENTITY_KEYS")
    if spec is None:
        if environment not in DEV_ENVIRONMENTS:
            raise ConfigError("IDENTITY_KEYS must be set (kid:base64 AES-256 key, active key first)")
        return IdentityKeys.derived_for_dev(jwt_private_key_pem)
    return IdentityKeys.parse(spec, env.str("IDENTITY_FINGERPRINT_KEY"))
