"""The gateway's gunicorn worker and logger: gunicorn's own refusals in the API's JSON error format, no Server
name, and phone and ID numbers masked in what gunicorn itself logs."""

from __future__ import annotations

import json
import logging
import socket
import uuid

from gunicorn import glogging, util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.gthread import ThreadWorker

from gateway.errors import FALLBACK_CODES
from services.common.logs import MaskPii, request_id_var

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


class MaskingLogger(glogging.Logger):
    """gunicorn's logger, its lines masked like the app's (services/common/logs.py mask_pii).

    The app logs each request's path without its query; gunicorn's access log (off unless
    `--access-logfile` is given) writes the whole request line, `GET /api/v1/admin/users?phone=...`,
    and its error log quotes the URI of a request that failed. Neither goes through the app's
    JsonFormatter, so each of its loggers masks its records itself.
    """

    MASK = MaskPii()

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.addFilter(self.MASK)  # once: a configuration reload adds the same filter again, which is ignored
