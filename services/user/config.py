"""User service settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import DEV_ENVIRONMENTS, ConfigError, Env, ServiceSettings, provider_url, read_key
from services.user.identity import IdentityKeys

SMS_PROVIDERS = ("console", "aliyun")
# Real-name providers; "format-only" (dev/test only) accepts whatever passes the format checks.
IDENTITY_PROVIDERS = ("format-only", "faceid")


@dataclass(frozen=True)
class AliyunSmsSettings:
    """Aliyun SMS (dysmsapi SendSms, RPC signature v1): the account and the approved sign and template."""

    endpoint: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_name: str
    template_code: str  # an approved verification-code template with the variable ${code}
    region_id: str
    timeout_seconds: float


@dataclass(frozen=True)
class WechatSettings:
    """The mini-program's AppID and AppSecret, and the WeChat API host that answers code2session."""

    api_base: str
    appid: str
    app_secret: str = field(repr=False)
    timeout_seconds: float


@dataclass(frozen=True)
class RealNameSettings:
    """Tencent Cloud FaceID (API 3.0, TC3-HMAC-SHA256) for the name + ID number check."""

    endpoint: str
    secret_id: str
    secret_key: str = field(repr=False)
    timeout_seconds: float


@dataclass(frozen=True)
class UserSettings:
    base: ServiceSettings
    jwt_private_key_pem: bytes
    sms_provider: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    staff_session_max_hours: int  # a session with staff roles ends this long after its password login
    refresh_reuse_grace_seconds: int  # a shopper's spent refresh token still gives a pair this long after its use
    identity_provider: str
    identity_keys: IdentityKeys = field(repr=False)
    aliyun_sms: AliyunSmsSettings | None = None  # set when SMS_PROVIDER=aliyun
    wechat: WechatSettings | None = None  # None: WeChat login is not configured (WECHAT_APPID unset)
    realname: RealNameSettings | None = None  # None: real-name checks are not configured (REALNAME_SECRET_ID unset)

    @classmethod
    def from_env(cls, base: ServiceSettings, environ: Mapping[str, str] | None = None) -> UserSettings:
        env = Env(environ)
        # No default on purpose: a forgotten variable must not turn on the provider that reveals codes.
        sms_provider = env.str("SMS_PROVIDER")
        if sms_provider not in SMS_PROVIDERS:
            raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {sms_provider!r}")
        if sms_provider == "console" and base.environment not in DEV_ENVIRONMENTS:
            raise ConfigError("SMS_PROVIDER=console hands codes to the caller; it runs only with MINIMALL_ENV=dev or test")
        timeout = env.float("THIRD_PARTY_TIMEOUT_SECONDS", 5.0)
        identity_provider = read_identity_provider(env, base.environment)
        jwt_private_key_pem = read_key(env, "JWT_PRIVATE_KEY_FILE", "var/keys/jwt-private.pem")
        return cls(
            base=base,
            jwt_private_key_pem=jwt_private_key_pem,
            sms_provider=sms_provider,
            access_token_ttl_seconds=env.int("ACCESS_TOKEN_TTL_SECONDS", 900),
            refresh_token_ttl_seconds=env.int("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
            staff_session_max_hours=env.int_within("STAFF_SESSION_MAX_HOURS", 12, 1, 30 * 24),
            refresh_reuse_grace_seconds=env.int_within("REFRESH_TOKEN_REUSE_GRACE_SECONDS", 30, 0, 300),
            aliyun_sms=_aliyun_sms(env, base, timeout) if sms_provider == "aliyun" else None,
            wechat=_wechat(env, base, timeout),
            realname=_realname(env, base, timeout),
            identity_provider=identity_provider,
            identity_keys=read_identity_keys(env, base.environment, jwt_private_key_pem),
        )


def _aliyun_sms(env: Env, base: ServiceSettings, timeout: float) -> AliyunSmsSettings:
    return AliyunSmsSettings(
        endpoint=_endpoint(env, base, "ALIYUN_SMS_ENDPOINT", "https://dysmsapi.aliyuncs.com/"),
        access_key_id=env.str("ALIYUN_SMS_ACCESS_KEY_ID"),
        access_key_secret=env.str("ALIYUN_SMS_ACCESS_KEY_SECRET"),
        sign_name=env.str("ALIYUN_SMS_SIGN_NAME"),
        template_code=env.str("ALIYUN_SMS_TEMPLATE_CODE"),
        region_id=env.str("ALIYUN_SMS_REGION_ID", "cn-hangzhou"),
        timeout_seconds=timeout,
    )


def _wechat(env: Env, base: ServiceSettings, timeout: float) -> WechatSettings | None:
    appid = env.optional("WECHAT_APPID")
    if appid is None:
        return None
    return WechatSettings(api_base=_endpoint(env, base, "WECHAT_API_BASE", "https://api.weixin.qq.com"),
                          appid=appid, app_secret=env.str("WECHAT_APP_SECRET"), timeout_seconds=timeout)


def _realname(env: Env, base: ServiceSettings, timeout: float) -> RealNameSettings | None:
    secret_id = env.optional("REALNAME_SECRET_ID")
    if secret_id is None:
        return None
    return RealNameSettings(endpoint=_endpoint(env, base, "REALNAME_ENDPOINT", "https://faceid.tencentcloudapi.com/"),
                            secret_id=secret_id, secret_key=env.str("REALNAME_SECRET_KEY"), timeout_seconds=timeout)


def _endpoint(env: Env, base: ServiceSettings, name: str, default: str) -> str:
    """A provider URL; outside dev and test only https, since the requests carry credentials and PII."""
    return provider_url(name, env.str(name, default), base.environment)


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
