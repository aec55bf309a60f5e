"""Secrets never reach the logs, even at DEBUG: a real code2session call, with the process's logging configured."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.logs import configure_logging
from services.user.config import WechatSettings
from services.user.wechat import WechatAuth
from tests.fixtures.http import serving

APP_SECRET = "appsecret0123456789abcdef0123456"
SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
JS_CODE = "081jsCode0123456789"


@pytest.fixture
def wechat_api() -> Iterator[str]:
    """A WeChat API host whose code2session answers every code with an openid and a session key."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = json.dumps({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "session_key": SESSION_KEY}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def debug_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The process's logging as a service configures it, at DEBUG, to a string; the root logger restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    urllib3_level = logging.getLogger("urllib3").level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("user", "DEBUG")
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(urllib3_level)


def test_a_code2session_at_debug_level_logs_neither_the_app_secret_nor_the_code_nor_the_session_key(
        wechat_api: str, debug_logging: io.StringIO) -> None:
    auth = WechatAuth(WechatSettings(api_base=wechat_api, appid="wx5e1f0c0ffee0d0e1", app_secret=APP_SECRET,
                                     timeout_seconds=5))

    session = auth.code2session(JS_CODE)
    logging.getLogger("services.user").debug("logged in %r", session)

    logged = debug_logging.getvalue()
    assert "logged in" in logged  # DEBUG records do reach the output
    assert APP_SECRET not in logged and JS_CODE not in logged and SESSION_KEY not in logged
