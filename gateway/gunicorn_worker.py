"""The gateway's gunicorn worker: gunicorn's own refusals in the API's JSON error format, no Server name."""

from __future__ import annotations

import json
import logging
import socket
import uuid

from gunicorn import util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.gthread import ThreadWorker

from gateway.errors import FALLBACK_CODES
from services.common.logs import request_id_var

log = logging.getLogger(__name__)

# What gunicorn's refusals mean to a client; its own text repeats the raw request line or header.
MESSAGES = {
    400: "the request is not valid HTTP",
    403: "the request was refused",
    414: "the request line is too long",
    417: "the Expect header is not supported",
    431: "the request headers are too large",
    500: "internal error",
    501: "the transfer coding is not supported",
}
# Every response names this server, not the software behind it.
SERVER_NAME = "minimall"


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Stands in for gunicorn.util.write_error: the same answer as JSON, with a request id, the raw input never echoed."""
    request_id = uuid.uuid4().hex
    token = request_id_var.set(request_id)
    try:
        log.warning("refused before reaching the app: %d %s", status_int, reason, extra={"status": status_int})
    finally:
        request_id_var.reset(token)
    body = json.dumps({"error": {"code": FALLBACK_CODES.get(status_int, "ERROR"),
                                 "message": MESSAGES.get(status_int, reason.lower()),
                                 "request_id": request_id}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\nX-Content-Type-Options: nosniff\r\n"
            "Cache-Control: no-store\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorWorker(ThreadWorker):
    """gthread, except for how gunicorn answers requests it refuses (414, 431, bad framing...).

    gunicorn has no setting for either: its error page is HTML written by `util.write_error`, and
    its Server header is `gunicorn.http.wsgi.SERVER`. Both are replaced here, in the worker process
    only, before it serves anything.
    """

    def init_process(self) -> None:
        util.write_error = write_json_error
        gunicorn_wsgi.SERVER = SERVER_NAME  # type: ignore[misc]
        super().init_process()
