"""The simulator's settings: the dev credentials it accepts, its flow-control limits, its known identities."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import Env, var_dir

DEFAULT_PORT = 8099


def dev_key_dir(env: Env, provider: str) -> str:
    """Where the simulator keeps a provider's dev key pairs: $MINIMALL_VAR/keys/<provider>-dev."""
    return str(var_dir(env) / "keys" / f"{provider}-dev")


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulated providers accept. The credentials are dev-only values, never real accounts.

    The simulator reads the same environment variables as the user service's adapters, so one
    environment (devrun's) gives both sides the same account.
    """

    wechat_appid: str = "wx5e1f0c0ffee0d0e1"
    wechat_app_secret: str = field(default="sim-wechat-app-secret", repr=False)
    aliyun_access_key_id: str = "LTAIsimulator0001"
    aliyun_access_key_secret: str = field(default="sim-aliyun-access-key-secret", repr=False)
    tencent_secret_id: str = "AKIDsimulator0001"
    tencent_secret_key: str = field(default="sim-tencent-secret-key", repr=False)
    wechatpay_mchid: str = "1900000109"
    wechatpay_merchant_serial: str = "5E1F0C0FFEE0D0E15E1F0C0FFEE0D0E15E1F0C0F"
    wechatpay_apiv3_key: str = field(default="simWechatPayApiV3DevKey000000000", repr=False)  # 32 bytes
    wechatpay_platform_serial: str = "PUB_KEY_ID_0119000001092026000000000000000001"
    # The dev merchant and platform RSA key pairs, generated there at start when missing (never committed).
    wechatpay_key_dir: str = field(default_factory=lambda: dev_key_dir(Env(), "wechatpay"))
    alipay_app_id: str = "2021000000000001"
    # The dev application and Alipay RSA key pairs, generated there at start when missing (never committed).
    alipay_key_dir: str = field(default_factory=lambda: dev_key_dir(Env(), "alipay"))
    bankcard_merchant_id: str = "M100000000000001"
    bankcard_secret: str = field(default="simBankcardMerchantSecret0000000000", repr=False)
    wechat_minute_quota: int = 100  # code2session calls per openid per minute, then errcode 45011
    sms_per_minute: int = 1  # Aliyun's default flow control for verification codes, per phone number
    sms_per_hour: int = 5
    sms_per_day: int = 10
    # (real name, ID number) pairs the registry knows: that ID number matches only that name.
    identities: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        env = os.environ if environ is None else environ
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name) or default

        def number(name: str, default: int) -> int:
            return int(env.get(name) or default)

        # SIM_REALNAME_IDENTITIES="张三:11010519491231002X,李四:..." pre-registers name/ID pairs.
        identities = tuple((name.strip(), id_number.strip()) for name, _, id_number in
                           (pair.partition(":") for pair in (env.get("SIM_REALNAME_IDENTITIES") or "").split(","))
                           if id_number)
        return cls(
            wechat_appid=text("WECHAT_APPID", defaults.wechat_appid),
            wechat_app_secret=text("WECHAT_APP_SECRET", defaults.wechat_app_secret),
            aliyun_access_key_id=text("ALIYUN_SMS_ACCESS_KEY_ID", defaults.aliyun_access_key_id),
            aliyun_access_key_secret=text("ALIYUN_SMS_ACCESS_KEY_SECRET", defaults.aliyun_access_key_secret),
            tencent_secret_id=text("REALNAME_SECRET_ID", defaults.tencent_secret_id),
            tencent_secret_key=text("REALNAME_SECRET_KEY", defaults.tencent_secret_key),
            wechatpay_mchid=text("WECHATPAY_MCHID", defaults.wechatpay_mchid),
            wechatpay_merchant_serial=text("WECHATPAY_MERCHANT_SERIAL", defaults.wechatpay_merchant_serial),
            wechatpay_apiv3_key=text("WECHATPAY_APIV3_KEY", defaults.wechatpay_apiv3_key),
            wechatpay_platform_serial=text("SIM_WECHATPAY_PLATFORM_SERIAL", defaults.wechatpay_platform_serial),
            wechatpay_key_dir=text("SIM_WECHATPAY_KEY_DIR", dev_key_dir(Env(env), "wechatpay")),
            alipay_app_id=text("ALIPAY_APP_ID", defaults.alipay_app_id),
            alipay_key_dir=text("SIM_ALIPAY_KEY_DIR", dev_key_dir(Env(env), "alipay")),
            bankcard_merchant_id=text("BANKCARD_MERCHANT_ID", defaults.bankcard_merchant_id),
            bankcard_secret=text("BANKCARD_SECRET", defaults.bankcard_secret),
            wechat_minute_quota=number("SIM_WECHAT_MINUTE_QUOTA", defaults.wechat_minute_quota),
            sms_per_minute=number("SIM_SMS_PER_MINUTE", defaults.sms_per_minute),
            sms_per_hour=number("SIM_SMS_PER_HOUR", defaults.sms_per_hour),
            sms_per_day=number("SIM_SMS_PER_DAY", defaults.sms_per_day),
            identities=identities,
        )


class SimClock:
    """The simulator's time for ages (code expiry, flow-control windows); tests move it with /sim/clock.

    Signed request timestamps are checked against the real clock instead: clients sign with theirs.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
