"""The dev simulator process: every simulated provider behind one HTTP server, plus the /sim/ test hooks."""

from __future__ import annotations

import threading
from pathlib import Path

from tools.simulator import alipay, aliyun_sms, bankcard, faceid, wechatpay
from tools.simulator.alipay import AlipaySimulator
from tools.simulator.aliyun_sms import AliyunSmsSimulator
from tools.simulator.bankcard import BankcardSimulator
from tools.simulator.config import DEFAULT_PORT, SimClock, SimulatorConfig
from tools.simulator.faceid import FaceIdSimulator
from tools.simulator.web import Handler, Request, Response, SimulatorServer
from tools.simulator.wechat import WechatSimulator
from tools.simulator.wechatpay import WechatPaySimulator


class Simulator:
    """WeChat code2session, WeChat Pay, Alipay, a bank-card channel, Aliyun SMS and FaceID on one host:port,
    with in-memory state."""

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.config = config or SimulatorConfig()
        self.clock = SimClock()
        self.wechat = WechatSimulator(self.config, self.clock)
        self.sms = AliyunSmsSimulator(self.config, self.clock)
        self.faceid = FaceIdSimulator(self.config)
        self.wechatpay = WechatPaySimulator(self.config, self.clock)
        self.alipay = AlipaySimulator(self.config, self.clock)
        self.bankcard = BankcardSimulator(self.config, self.clock)
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "/sim/healthz"): lambda _: Response(200, {"status": "ok"}),
            ("POST", "/sim/reset"): self._reset,
            ("POST", "/sim/clock"): self._advance_clock,
        }
        for provider in self._providers():
            routes.update(provider.routes())
        self.server = SimulatorServer((host, port), routes)
        self._thread: threading.Thread | None = None

    def _providers(self) -> tuple[WechatSimulator | AliyunSmsSimulator | FaceIdSimulator | WechatPaySimulator
                                  | AlipaySimulator | BankcardSimulator, ...]:
        return (self.wechat, self.sms, self.faceid, self.wechatpay, self.alipay, self.bankcard)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Simulator:
        """Serve from a daemon thread (tests, or a supervisor in-process); stop() ends it."""
        self._thread = self.server.start_in_thread()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _reset(self, _: Request) -> Response:
        """POST /sim/reset: forget every code, message, registration, forced failure and flow-control count."""
        for provider in self._providers():
            provider.reset()
        return Response(200, {"reset": True})

    def _advance_clock(self, request: Request) -> Response:
        """POST /sim/clock {"advance_seconds"}: codes and flow-control windows age that much at once."""
        seconds = request.json()["advance_seconds"]
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("advance_seconds must be a number >= 0")
        self.clock.advance(float(seconds))
        return Response(200, {"advanced_seconds": seconds})


def dev_env(base_url: str, config: SimulatorConfig | None = None) -> dict[str, str]:
    """The services' environment that points their adapters at a simulator on `base_url`.

    The WeChat Pay key files appear when the simulator starts (it generates them under its key dir).
    """
    config = config or SimulatorConfig()
    keys = wechatpay.key_files(Path(config.wechatpay_key_dir).resolve())
    return {
        "WECHAT_API_BASE": base_url,
        "WECHAT_APPID": config.wechat_appid,
        "WECHAT_APP_SECRET": config.wechat_app_secret,
        "ALIYUN_SMS_ENDPOINT": f"{base_url}{aliyun_sms.PATH}/",
        "ALIYUN_SMS_ACCESS_KEY_ID": config.aliyun_access_key_id,
        "ALIYUN_SMS_ACCESS_KEY_SECRET": config.aliyun_access_key_secret,
        "ALIYUN_SMS_SIGN_NAME": "MiniMall",
        "ALIYUN_SMS_TEMPLATE_CODE": "SMS_000000001",
        "REALNAME_ENDPOINT": f"{base_url}{faceid.PATH}/",
        "REALNAME_SECRET_ID": config.tencent_secret_id,
        "REALNAME_SECRET_KEY": config.tencent_secret_key,
        "WECHATPAY_API_BASE": base_url,
        "WECHATPAY_MCHID": config.wechatpay_mchid,
        "WECHATPAY_APPID": config.wechat_appid,
        "WECHATPAY_MERCHANT_SERIAL": config.wechatpay_merchant_serial,
        "WECHATPAY_MERCHANT_KEY_FILE": str(keys[wechatpay.MERCHANT_PRIVATE]),
        "WECHATPAY_APIV3_KEY": config.wechatpay_apiv3_key,
        "WECHATPAY_PLATFORM_CERTS": f"{config.wechatpay_platform_serial}:{keys[wechatpay.PLATFORM_PUBLIC]}",
        "SIM_WECHATPAY_KEY_DIR": str(Path(config.wechatpay_key_dir).resolve()),
        **alipay.dev_env(config, base_url),
        **bankcard.dev_env(config, base_url),
    }


def start_simulator(host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                    config: SimulatorConfig | None = None) -> Simulator:
    """A running simulator in this process (port 0: any free port; read .base_url)."""
    return Simulator(config, host, port).start()
