"""The simulator's tiny HTTP layer: a request, a response, a route table, and the stdlib server around them."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("simulator")

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    raw_query: str = ""  # as sent: WeChat Pay signatures cover it

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is {}."""
        if not self.body:
            return {}
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("the body must be a JSON object")
        return value

    def form(self) -> dict[str, list[str]]:
        """Query parameters, plus the body's when it is a form (Aliyun accepts both)."""
        params = {name: list(values) for name, values in self.query.items()}
        if self.headers.get_content_type() == "application/x-www-form-urlencoded":
            for name, values in parse_qs(self.body.decode(), keep_blank_values=True).items():
                params.setdefault(name, []).extend(values)
        return params


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any] | list[Any]
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        """The body's bytes on the wire (WeChat Pay signs exactly these); none with 204 No Content."""
        return b"" if self.status == 204 else json.dumps(self.body, ensure_ascii=False).encode()


Handler = Callable[[Request], Response]


class SimulatorError(Exception):
    """A misuse of a /sim/ test hook: answered 400 with the message."""


# What a channel's status-query answers about a trade can be spoilt into (POST /sim/<channel>/query-tamper).
QUERY_TAMPERS = ("bad_signature", "wrong_amount")


def spoil_query_answers(request: Request, lock: threading.Lock, trades: dict[str, Any], pay_hook: str) -> Response:
    """POST /sim/<channel>/query-tamper {"out_trade_no", "tamper": one of QUERY_TAMPERS or null}: from now on the
    channel's answers to status queries about that trade are spoilt that way (a forged answer, another amount)."""
    body = request.json()
    out_trade_no, tamper = str(body.get("out_trade_no")), body.get("tamper")
    if tamper is not None and tamper not in QUERY_TAMPERS:
        raise SimulatorError(f"tamper must be one of {', '.join(QUERY_TAMPERS)}")
    with lock:
        trade = trades.get(out_trade_no)
        if trade is None:
            raise SimulatorError(f"no such trade: pay it first ({pay_hook})")
        trade.query_tamper = tamper
    return Response(200, {"out_trade_no": out_trade_no, "tamper": tamper})


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes
        super().__init__(address, _RequestHandler)

    def dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        handler = self.routes.get((request.method, path))
        # A "*" segment in a route takes any one path segment (a resource id such as an out_trade_no).
        segments = path.split("/")
        for index in range(len(segments) - 1, 0, -1):
            if handler is not None:
                break
            handler = self.routes.get((request.method, "/".join([*segments[:index], "*", *segments[index + 1:]])))
        if handler is None:
            return Response(404, {"error": f"no route {request.method} {request.path}"})
        try:
            return handler(request)
        except (SimulatorError, ValueError, KeyError, TypeError) as exc:
            return Response(400, {"error": f"{type(exc).__name__}: {exc}"})

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="simulator", daemon=True)
        thread.start()
        return thread


class _RequestHandler(BaseHTTPRequestHandler):
    server: SimulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            if length <= 16 * MAX_BODY_BYTES:
                self.rfile.read(length)  # unread bytes at close would reset the connection before our answer
            self._send(Response(413, {"error": "body too large"}))
            return
        url = urlsplit(self.path)
        request = Request(self.command, url.path, parse_qs(url.query, keep_blank_values=True), self.headers,
                          self.rfile.read(length), url.query)
        self._send(self.server.dispatch(request))

    def _send(self, response: Response) -> None:
        payload = response.payload()
        self.send_response(response.status)
        self.send_header("Content-Type", f"{response.content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: queries carry the (simulated) AppSecret and wx.login codes.
        log.info("%s %s %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.warning("%s", format % args)
