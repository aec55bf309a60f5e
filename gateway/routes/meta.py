"""Liveness, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template_string
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api import openapi_spec

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Live: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready: the services in GATEWAY_READY_REQUIRES report SERVING on gRPC health (all are listed)."""
    services = current_app.extensions["clients"].health()
    required = current_app.extensions["settings"].ready_requires
    ready = all(services.get(name) == "SERVING" for name in required)
    return jsonify({"status": "ready" if ready else "not_ready", "services": services}), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_spec(current_app))


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MiniMall API</title>
<style>
 body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
 h2{border-bottom:1px solid #ddd;margin-top:2em} .op{margin:1em 0;padding:.6em 1em;background:#f7f7f9;border-radius:6px}
 .m{display:inline-block;min-width:4em;font-weight:600;text-transform:uppercase} .lock{color:#a60}
 pre{background:#fff;border:1px solid #eee;padding:.5em;overflow:auto;font-size:13px}
</style></head><body>
<h1>{{ spec.info.title }} <small>{{ spec.info.version }}</small></h1>
<p>{{ spec.info.description }} Machine-readable: <a href="/openapi.json">/openapi.json</a>.
Errors: <code>{"error": {"code", "message", "request_id", "details"?}}</code>.</p>
{% for tag, ops in groups.items() %}<h2>{{ tag }}</h2>
{% for path, method, op in ops %}<div class="op"><span class="m">{{ method }}</span> <code>{{ path }}</code>
 {% if op.security %}<span class="lock">🔒 bearer</span>{% endif %} — {{ op.summary }}
 {% if op.description %}<br><em>{{ op.description }}</em>{% endif %}
 {% if op.requestBody %}<pre>{{ op.requestBody.content["application/json"].schema | tojson(indent=2) }}</pre>{% endif %}
</div>{% endfor %}{% endfor %}
</body></html>"""


@bp.get("/docs")
def docs() -> str:
    spec = openapi_spec(current_app)
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            groups.setdefault(op["tags"][0], []).append((path, method, op))
    return render_template_string(DOCS_PAGE, spec=spec, groups=groups)
