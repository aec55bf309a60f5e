"""The bare baseline of bench/catalog.py: a Flask app answering recorded JSON bodies from memory.

`gunicorn bench.bare_app:app` with BENCH_BARE_PAYLOADS naming a JSON file {path with query: body}.
No validation, no authentication, no service call: what Flask and gunicorn cost on their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, abort, request

PAYLOADS: dict[str, bytes] = {path: body.encode() for path, body in
                              json.loads(Path(os.environ["BENCH_BARE_PAYLOADS"]).read_text()).items()}
app = Flask(__name__)


@app.get("/<path:path>")
def answer(path: str) -> Response:
    body = PAYLOADS.get(request.full_path.rstrip("?"))
    if body is None:
        abort(404)
    return Response(body, mimetype="application/json")
