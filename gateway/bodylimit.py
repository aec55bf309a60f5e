"""The request-size limit applied to chunked bodies, which carry no Content-Length."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

WSGIApp = Any  # (environ, start_response) -> iterable of bytes


class ChunkedBodyLimit:
    """Reads a chunked body (up to `limit` + 1 bytes) and gives it a Content-Length.

    Werkzeug enforces MAX_CONTENT_LENGTH on a body with no Content-Length only by stopping at
    the limit: a 5 MB chunked body reached the view cut to 1 MB, failed to parse and was
    answered 400. With a Content-Length one byte over the limit, Flask answers 413 like any
    other too-large body; the bytes past it are never read into memory.
    """

    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # de-chunked now; Werkzeug ignores a length beside it
        return self.app(environ, start_response)
