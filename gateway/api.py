"""Declaring REST operations once: the same declaration validates input, enforces auth and feeds /openapi.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jsonschema
from flask import current_app, g, request

from gateway.errors import ApiError
from gateway.ratelimit import Limit

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"        # no token needed
SHOPPER = "shopper"      # any valid access token


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    access: str = SHOPPER                   # PUBLIC, SHOPPER, or "roles"
    roles: frozenset[str] = frozenset()     # when set, the caller needs one of them
    body: dict[str, Any] | None = None      # JSON Schema of the request body
    query: dict[str, Any] | None = None     # JSON Schema (object) of the query string
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)  # status -> JSON Schema
    limits: tuple[Limit, ...] = ()          # per-IP limits before the body is validated, body-keyed after


def operation(*, summary: str, tag: str, access: str = SHOPPER, roles: tuple[str, ...] = (),
              body: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
              responses: dict[int, dict[str, Any]] | None = None, limits: tuple[Limit, ...] = ()) -> Callable[[F], F]:
    """Attach an Operation to a view function."""
    def decorate(view: F) -> F:
        view.operation = Operation(summary=summary, tag=tag, access=access, roles=frozenset(roles),  # type: ignore[attr-defined]
                                   body=body, query=query, responses=responses or {}, limits=limits)
        return view
    return decorate


def current_operation() -> Operation | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "operation", None)


def _validate(schema: dict[str, Any], instance: object, where: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if problems:
        details = {}
        for problem in problems:
            name = ".".join(str(p) for p in problem.path) or where
            if problem.validator == "required":
                name = problem.message.split("'")[1]
            details.setdefault(name, problem.message)
        raise ApiError(400, "INVALID_REQUEST", f"the request {where} is invalid", details)


def validated_body(op: Operation) -> dict[str, Any]:
    """The request's JSON body checked against `op`'s schema (400 with per-field details)."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "INVALID_REQUEST", "the body must be a JSON object",
                       {"body": "expected application/json"})
    if op.body is not None:
        _validate(op.body, data, "body")  # every body schema is an object schema
    return data


def json_body() -> dict[str, Any]:
    """The body the gateway validated before the view ran (the operation must declare `body`)."""
    if "body" not in g:
        raise RuntimeError(f"{request.endpoint} reads a JSON body but its @operation declares no body schema")
    return g.body


def query_args() -> dict[str, str]:
    """The query string as a dict, checked against the operation's schema."""
    args = request.args.to_dict()
    op = current_operation()
    if op is not None and op.query is not None:
        _validate(op.query, args, "query")
    return args


def openapi_spec(app: Any) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the registered routes and their Operations."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op: Operation | None = getattr(app.view_functions.get(rule.endpoint), "operation", None)
        if op is None:
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": rule.endpoint,
                                     "responses": {str(s): {"description": "", "content": {"application/json": {
                                         "schema": schema}}} for s, schema in op.responses.items()}}
            entry["responses"]["default"] = {"$ref": "#/components/responses/Error"}
            if op.access != PUBLIC:
                entry["security"] = [{"bearer": []}]
            notes = []
            if op.roles:
                notes.append("Roles: " + ", ".join(sorted(op.roles)) + ".")
            if op.limits:
                notes.append("Rate limits: " + "; ".join(f"{lim.count} per {lim.seconds}s per {lim.key}"
                                                         for lim in op.limits) + " (429 with Retry-After).")
            if notes:
                entry["description"] = " ".join(notes)
            if op.body is not None:
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
            if op.query is not None:
                entry["parameters"] = [
                    {"name": name, "in": "query", "required": name in op.query.get("required", []), "schema": prop}
                    for name, prop in op.query.get("properties", {}).items()]
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "MiniMall API", "version": "1.0.0",
                 "description": "Money is integer fen (*_fen); times are ISO 8601 UTC."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}},
        },
    }


ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"},
        "details": {"type": "object"}}}},
}
