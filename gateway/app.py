"""Flask app factory of the gateway."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import api, errors, routes
from gateway.api import (
    PUBLIC,
    SHOPPER,
    TOLERANT,
    Operation,
    current_operation,
    enforce_limits,
    validate_body,
    validate_idempotency_key,
    validate_query,
)
from gateway.bodylimit import ChunkedBodyLimit
from gateway.catalog_cache import CatalogCache, RedisChangeLog
from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.knownphones import KnownPhones
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.ratelimit import caller_values, make_rate_limiter
from gateway.redisstore import RedisStore
from gateway.sessions import SessionMarks, SessionMarksUnavailable, make_session_marks
from gateway.storage import object_storage
from gateway.uploads import UploadNames
from services.common.auth import Caller, TokenVerifier, bearer_token, caller_var
from services.common.clients import ServiceClients
from services.common.config import Env
from services.common.discovery import Discovery
from services.common.errors import Unauthenticated
from services.common.logs import request_id_var

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
ADMIN_PREFIX = API_PREFIX + "admin/"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_BODY_BYTES = 1 << 20
# A chunked body is read up to this much to learn its length: the largest body any route accepts
# (POST /uploads raises its own limit to 5 MB plus the multipart envelope); each route's limit then applies.
MAX_CHUNKED_BODY_BYTES = 6 << 20
# Metric labels take only values the server chose: a label copied from the request (an invented
# method such as QWERTYZZ) would add a new, never-expiring series to /metrics per value.
METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Every answer but the pages that set their own: nothing to load or run, never inside a frame.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class Gateway(Flask):
    """Flask, answering OPTIONS as the API documents it (api.OPTIONS_NOTE)."""

    def make_default_options_response(self) -> Response:
        """204 with the Allow header and no body (Flask's default is a 200 typed text/html). No CORS headers: the
        mini-program's wx.request is no browser fetch, and the admin console and /docs come from the gateway's own
        origin, so no preflight is ever needed, and none is granted to another site."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        del response.headers["Content-Length"]
        return response


HSTS = "max-age=31536000"  # a year; no includeSubDomains: the shop's other hosts are not ours to decide


def create_app(settings: GatewaySettings | None = None, clients: ServiceClients | None = None) -> Flask:
    settings = settings or GatewaySettings.from_env()
    app = Gateway(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["settings"] = settings
    verifier = TokenVerifier(settings.jwt_public_key_pem, previous_public_key_pem=settings.jwt_previous_public_key_pem)
    # One Redis connection pool per worker, and one record of whether Redis answers (gateway/redisstore.py), for
    # the rate limits, the ended sessions' marks and the catalogue's change log; process memory without Redis.
    redis_store = RedisStore.from_url(settings.redis_url) if settings.redis_url else None
    limiter = app.extensions["rate_limiter"] = make_rate_limiter(
        redis_store, settings.rate_limit_scale, settings.rate_limit_secret)
    app.extensions["known_phones"] = KnownPhones(limiter.key, redis_store)
    app.extensions["upload_names"] = UploadNames(limiter.key)  # signs upload names for their uploader
    marks = app.extensions["session_marks"] = make_session_marks(redis_store)
    clients = app.extensions["clients"] = clients or ServiceClients(
        Discovery(settings.consul_http_addr, Env(settings.environ)), settings.grpc_timeout_seconds)
    if isinstance(clients, ServiceClients) and clients.on_sessions_ended is None:
        clients.on_sessions_ended = marks.record  # the user service's answers say which sessions ended
    changes = (RedisChangeLog(redis_store, fresh_for=settings.catalog_version_check_seconds)
               if redis_store is not None else None)
    app.extensions["catalog_cache"] = CatalogCache(settings.catalog_cache_seconds,
                                                   settings.catalog_cache_following_seconds, changes)
    media_store = object_storage(Env(settings.environ))  # None: the local media directory (gateway/routes/media.py)
    if media_store is not None:
        app.extensions["media_storage"] = media_store
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, MAX_CHUNKED_BODY_BYTES)  # type: ignore[method-assign]
    if settings.proxy_hops:
        # The client's address and scheme as the trusted proxies (the ingress) saw them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops,  # type: ignore[method-assign]
                                x_proto=settings.proxy_hops)

    errors.init_app(app)
    api.init_app(app)
    for blueprint in routes.blueprints():
        app.register_blueprint(blueprint)
    _check_admin_routes_declare_roles(app)

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)
        g.started = time.perf_counter()
        g.caller = None
        op = current_operation()
        if op is None or request.method == "OPTIONS":  # Gateway answers OPTIONS (204, Allow); it has no body
            return
        # Per-IP limits count every request, malformed or not; then who is calling; then the
        # input; limits keyed by body fields (phone, ...) see only validated values.
        enforce_limits(tuple(lim for lim in op.limits if lim.client_only))
        if op.access == SHOPPER or "Authorization" in request.headers and op.access != PUBLIC:
            try:
                g.caller = _authenticate(verifier, marks, op)
            except Unauthenticated:
                if op.access != TOLERANT:
                    raise
            else:
                g.caller_token = caller_var.set(g.caller)  # services called for this request see the caller
        caller = caller_values(g.caller.user_id if g.caller is not None else 0)
        enforce_limits(tuple(lim for lim in op.limits if lim.before_body and not lim.client_only), caller=caller)
        validate_query(op)
        if op.body is not None:
            validate_body(op)
            enforce_limits(tuple(lim for lim in op.limits if not lim.before_body), g.body.model_dump(), caller)
        validate_idempotency_key(op)

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Nothing the gateway answers runs anything or belongs in another site's frame (clickjacking): JSON, errors,
        # the OpenAPI document. A page that loads its own files (/admin/, /docs) sets its own policy, kept here.
        response.headers.setdefault("Content-Security-Policy", API_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:  # reached over HTTPS (at the ingress): never over plain HTTP again, staff logins included
            response.headers["Strict-Transport-Security"] = HSTS
        if request.path.startswith(API_PREFIX):
            # Tokens and personal data must not sit in a browser or proxy cache; a route whose
            # answer may be cached (a public catalog page) sets its own Cache-Control.
            response.headers.setdefault("Cache-Control", "no-store")
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in METRIC_METHODS else "other"
        HTTP_REQUESTS.labels(method, endpoint, str(response.status_code)).inc()
        if "started" in g:
            HTTP_LATENCY.labels(method, endpoint).observe(time.perf_counter() - g.started)
        if endpoint not in ("/metrics", "/healthz", "/readyz"):
            log.info("%s %s -> %d", request.method, request.path, response.status_code,
                     extra={"status": response.status_code})
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
        caller_token = g.pop("caller_token", None)
        if caller_token is not None:
            caller_var.reset(caller_token)

    return app


def _authenticate(verifier: TokenVerifier, marks: SessionMarks, op: Operation) -> Caller:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthenticated("AUTH_REQUIRED", "this endpoint needs 'Authorization: Bearer <access token>'")
    caller = verifier.verify(token)  # cached per token; whether its session has ended since is asked every time
    try:
        ended = marks.ended(caller)
    except SessionMarksUnavailable:
        # Staff tokens fail closed, on every route: a staff token carries powers over the whole shop (money,
        # stock, other people's data), and not only on staff routes (the services let staff read anyone's order
        # or after-sale through the shopper routes too), so a revoked one (a fired employee's, a stolen one)
        # must not work on while Redis is down; staff can wait for it. Shoppers' tokens fail open: one acts only
        # for its own account, and the shop must not stop selling because its cache is down; at worst an ended
        # session's token works until it expires, as every token did before sessions could end early.
        if op.access == TOLERANT and caller.roles:
            # A route that never refuses (tracking) takes a staff token it cannot vouch for now as no token at all:
            # the request goes on anonymously, the token's powers not passed on to the services it calls.
            raise Unauthenticated("SESSION_CHECK_UNAVAILABLE", "whether this session is still valid cannot be "
                                  "checked now") from None
        if op.roles or caller.roles:
            raise ApiError(503, "SESSION_CHECK_UNAVAILABLE",
                           "whether this session is still valid cannot be checked now; try again shortly") from None
        ended = False
    if ended:
        raise Unauthenticated("SESSION_ENDED", "this session has ended (logged out, password changed or roles "
                              "changed); refresh it or log in again")
    if op.roles and not caller.has_any_role(*op.roles):
        raise ApiError(403, "FORBIDDEN", "your account may not do this")
    return caller


def _check_admin_routes_declare_roles(app: Flask) -> None:
    """Fail at start-up, not in production, if an admin route forgot its roles."""
    for rule in app.url_map.iter_rules():
        op: Any = getattr(app.view_functions[rule.endpoint], "operation", None)
        if rule.rule.startswith(ADMIN_PREFIX) and (op is None or not op.roles):
            raise RuntimeError(f"admin route {rule.rule} must declare the roles allowed to call it")
