"""Liveness, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

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


DOCS_STYLE = """
 body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
 h2{border-bottom:1px solid #ddd;margin-top:2em} .op{margin:1em 0;padding:.6em 1em;background:#f7f7f9;border-radius:6px}
 .m{display:inline-block;min-width:4em;font-weight:600;text-transform:uppercase} .lock{color:#a60}
 pre{background:#fff;border:1px solid #eee;padding:.5em;overflow:auto;font-size:13px}
 summary{cursor:pointer} ul{margin:.3em 0}
"""
# The page is its HTML and this one inline style (allowed by its hash): no script, image or other origin runs or
# loads in it, whatever a summary or description written into the spec holds; never inside a frame. Jinja escapes
# every value written into it (autoescape; tojson escapes <, >, & and ').
_STYLE_HASH = base64.b64encode(hashlib.sha256(DOCS_STYLE.encode()).digest()).decode()
DOCS_POLICY = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MiniMall API</title>
<style>""" + DOCS_STYLE + """</style></head><body>
<h1>{{ spec.info.title }} <small>{{ spec.info.version }}</small></h1>
<p>{{ spec.info.description }} Machine-readable: <a href="/openapi.json">/openapi.json</a>.
Errors: <code>{"error": {"code", "message", "request_id", "details"?}}</code>.</p>
{% for tag, ops in groups.items() %}<h2>{{ tag }}</h2>
{% for path, method, op in ops %}<div class="op"><span class="m">{{ method }}</span> <code>{{ path }}</code>
 {% if op.token_required %}<span class="lock">🔒 bearer</span>{% elif op.security %}<span>bearer optional</span>{% endif %}
 — {{ op.summary }}
 {% if op.description %}<br><em>{{ op.description }}</em>{% endif %}
 {% if op.parameters %}<ul>{% for p in op.parameters %}<li><code>{{ p.name }}</code> ({{ p.in }}{% if p.required %},
 required{% endif %}): <code>{{ p.schema | tojson }}</code>{% if p.description %} {{ p.description }}{% endif %}</li>
 {% endfor %}</ul>{% endif %}
 {% for media_type, body in (op.requestBody or {}).get("content", {}).items() %}<pre>{{ media_type }}: {{ body.schema | tojson(indent=2) }}</pre>{% endfor %}
 {% for status, answer in op.responses.items() %}<details><summary>{{ status }} {{ answer.description }}</summary>
 {% for media_type, body in (answer.content or {}).items() %}<pre>{{ media_type }}: {{ body.schema | tojson(indent=2) }}</pre>{% endfor %}
 </details>{% endfor %}
</div>{% endfor %}{% endfor %}
</body></html>"""
MAX_SCHEMA_DEPTH = 8  # models written out inside one another, at most; deeper ones (and a model inside itself) named


def written_out(node: Any, components: dict[str, Any], within: tuple[str, ...] = ()) -> Any:
    """`node` of the OpenAPI document with each `$ref` to its components replaced by what it names, for a reader of
    the page; a reference inside what it names (a cycle), past MAX_SCHEMA_DEPTH, or to nothing is left as the name
    of what it refers to (`{"title": name}`)."""
    if isinstance(node, list):
        return [written_out(item, components, within) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        kind, _, name = ref.removeprefix("#/components/").rpartition("/")
        target = components.get(kind, {}).get(name) if ref.startswith("#/components/") else None
        rest = {key: value for key, value in node.items() if key != "$ref"}
        if target is None or ref in within or len(within) >= MAX_SCHEMA_DEPTH:
            return written_out({"title": name} | rest, components, within)
        return written_out(target | rest, components, (*within, ref))
    return {key: written_out(value, components, within) for key, value in node.items()}


@bp.get("/docs")
def docs() -> Response:
    spec = openapi_spec(current_app)
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            shown = written_out(op, spec["components"])
            # a route that also takes no token ({} among its security options) is open: no lock
            shown["token_required"] = bool(op.get("security")) and {} not in op["security"]
            groups.setdefault(op["tags"][0], []).append((path, method, shown))
    response = Response(render_template_string(DOCS_PAGE, spec=spec, groups=groups), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response
