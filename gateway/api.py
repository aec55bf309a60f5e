"""REST operations declared once with pydantic models: the declaration validates, authorizes and documents.

A view is declared with `@operation(...)` naming its request models (`body`, `query`) and its
response models per status. Before the view runs, the gateway (app.py) checks the caller and
validates the query string and JSON body against those models; the view receives them as the
keyword arguments `body` and `query`, typed, alongside Flask's path parameters. An operation
declared `idempotent=True` needs the header Idempotency-Key: it is checked before the view runs,
the view receives it as the keyword argument `idempotency_key`, and the OpenAPI document declares
it as a required header parameter, so no route reads the header without documenting it. With
`key_optional=True` as well (a route that took no key before, whose older clients must keep working)
the header may be left out: the view then gets "" (each request runs), and the header is documented
as optional. A view
returns a response model (or `(model, status)`), which must be the model declared for that status.

The gateway checks the *shape* of input (types, lengths, required fields, no control characters in
text, ids that fit in int64); business rules (what a valid phone or SMS purpose is) belong to the
services' domains, which answer 400 with details.
"""

from __future__ import annotations

import decimal
import functools
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qsl, unquote_to_bytes

from flask import Response, current_app, g, jsonify, request
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError, core_schema
from werkzeug.routing import BaseConverter

from gateway.errors import ERROR_SCHEMA, ApiError, error_response
from gateway.ratelimit import Limit, client_values
from services.common import formats, idempotency

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
StubT = TypeVar("StubT")

PUBLIC = "public"        # no token needed
SHOPPER = "shopper"      # any valid access token
OPTIONAL = "optional"    # public, but a token that is sent is verified and passed on (401 if it is bad)
TOLERANT = "tolerant"    # public; a valid token is passed on, a bad one is ignored (tracking never refuses)

MAX_DETAILS = 20         # field errors reported at most
MAX_FIELD_NAME = 64      # a client-chosen key (an unknown field) is cut to this length in details

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_NOTE = (f"Needs the header {IDEMPOTENCY_HEADER} (1-{idempotency.KEY_MAX_LENGTH} printable ASCII "
                    "characters).")
OPTIONAL_IDEMPOTENCY_NOTE = (f"Takes the header {IDEMPOTENCY_HEADER} (1-{idempotency.KEY_MAX_LENGTH} printable ASCII "
                             "characters), optional: without it every request runs anew; with it a retry with the "
                             "same key and body answers as the first did, the same key with another body is 409 "
                             "IDEMPOTENCY_KEY_REUSED.")
# What services/common/idempotency.validate accepts: 1-128 characters from space to tilde.
IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": idempotency.KEY_MAX_LENGTH,
                                          "pattern": "^[ -~]+$"}


MAX_ID = 999_999_999_999_999_999
MAX_WHOLE_DIGITS = 19  # a body's 2.0 is read as the integer 2 up to 10**20 (past int64, refused by its field)
# A row id (a path's <id:...>, a body's sku_id, each item of a list of ids): positive and within int64, the type of
# every id field of the protos: a larger number would fail building the request (a 500), not be refused (a 400).
Id = Field(ge=1, le=MAX_ID)

# Control characters (C0, U+0000-U+001F, and DEL) in any text of a request: PostgreSQL's text refuses NUL (the
# statement fails, a consumer would retry the event for ever), the XLSX reports refuse most of the others, and no
# name, number, reason or address holds one. Multi-line free text (`Multiline`) keeps tab, line feed and return.
CONTROL_CHARACTER = formats.CONTROL_CHARACTER_PATTERN
CONTROL_CHARACTER_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TEXT_NOTE = ("Text refuses control characters (U+0000-U+001F, U+007F; multi-line text such as a review or a "
             "product description accepts tab, line feed and carriage return): 400 INVALID_REQUEST naming the field.")


class _MultilineText:
    """Marks a request field as multi-line free text (see `Multiline`)."""


Multiline = Annotated[str, _MultilineText()]


def _holds(value: object, control: re.Pattern[str]) -> bool:
    """Whether `value` (a field's validated value: text, a list or dict of them, a nested model) has a control
    character; a nested request model is skipped, it checked its own fields (naming them)."""
    if isinstance(value, str):
        return control.search(value) is not None
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds(item, control) for item in value)
    if isinstance(value, dict):
        return any(_holds(key, control) or _holds(item, control) for key, item in value.items())
    if isinstance(value, BaseModel) and not isinstance(value, _Input):
        return any(_holds(item, control) for item in value.__dict__.values())
    return False


# The same rules as JSON Schema patterns, so that the OpenAPI document says which text is refused (a client generated
# from it, or schemathesis, would otherwise send a tab in a name and be told 400 for a request the document allows).
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
MULTILINE_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def _document_text_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A request model's JSON schema: each free-text field (a string, or a list of them, with no pattern, format or
    set of values of its own) gets the pattern of the characters `_Input` refuses in it."""
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    for name, prop in schema.get("properties", {}).items():
        info = fields.get(name)
        multiline = info is not None and any(isinstance(m, _MultilineText) for m in info.metadata)
        for text in _free_text_schemas(prop):
            text["pattern"] = MULTILINE_TEXT_PATTERN if multiline else TEXT_PATTERN


def _free_text_schemas(prop: dict[str, Any]) -> list[dict[str, Any]]:
    if prop.get("type") == "array":
        return _free_text_schemas(prop.get("items", {}))
    if prop.get("type") == "object":  # a dict of text: {"颜色": "黑"}, its keys as much as its values
        keys = prop.get("propertyNames")
        values = prop.get("additionalProperties")
        return ([keys] if isinstance(keys, dict) and not _constrained(keys) else []) + (
            _free_text_schemas(values) if isinstance(values, dict) else [])
    if "anyOf" in prop:  # `str | None`
        return [text for option in prop["anyOf"] for text in _free_text_schemas(option)]
    return [prop] if prop.get("type") == "string" and not _constrained(prop) else []


def _constrained(text: dict[str, Any]) -> bool:
    return any(key in text for key in ("pattern", "format", "enum", "const"))


class _Input(BaseModel):
    """What every request model (a body, a query string) checks of each of its fields."""

    model_config = ConfigDict(json_schema_extra=_document_text_rules)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        field_info = cls.model_fields.get(info.field_name or "")
        multiline = field_info is not None and any(isinstance(m, _MultilineText) for m in field_info.metadata)
        if _holds(value, CONTROL_CHARACTER_BUT_LINE_BREAKS if multiline else CONTROL_CHARACTER):
            raise PydanticCustomError("control_character", "must not contain control characters"
                                      + (" other than tab and line breaks" if multiline else ""))
        return value


class Body(_Input):
    """A JSON request body: unknown fields are refused, types are not coerced ("1" is not 1, true is not 1; 2.0 is 2,
    as JSON Schema reads it, see validate_body); no text holds a control character."""

    model_config = ConfigDict(extra="forbid", strict=True)


def omittable(*, json_schema_extra: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A body field that may be left out (it is then None) but, when sent, must not be null; `json_schema_extra` is
    added to its schema."""
    def schema(field_schema: dict[str, Any]) -> None:
        field_schema.pop("default", None)
        field_schema.update(json_schema_extra or {})
    return Field(None, json_schema_extra=schema, **constraints)


# An integer in a query string, as written: ASCII digits, a '-' first for a negative number (whether one is allowed is
# the field's bound), no leading zero. int() and pydantic's lax mode also take " 1", "+1", "1_000", "01", "1.0" and
# other scripts' digits: one value with many spellings, which caches, logs and rate-limit keys would tell apart.
QUERY_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
QUERY_INTEGER_NOTE = ("An integer in a query string is written in ASCII digits, with a leading '-' only where the "
                      "parameter allows negative values (0, 12, -3): no '+', spaces, '_', leading zeros, fraction or "
                      "other scripts' digits (400 INVALID_REQUEST naming the parameter).")

LIST_QUERY_NOTE = ("A query parameter that takes several values (an array in this document) is repeated (status=PAID&"
                   "status=SHIPPED) or given once with the values separated by commas (status=PAID,SHIPPED, as "
                   "wx.request writes an array); both may be mixed. Its values never hold a comma.")

OPTIONS_NOTE = ("OPTIONS on any path answers 204 with an Allow header listing its methods and no body, without a "
                "token and without counting against rate limits; no CORS headers are sent (the mini-program and the "
                "same-origin admin console need none). A method a path does not take is 405 METHOD_NOT_ALLOWED "
                "with Allow.")


def _takes_integer(annotation: Any) -> bool:
    """Whether a field typed `annotation` holds integers: int, int | None, list[int] (bool is not one)."""
    if annotation is int:
        return True
    return any(_takes_integer(arg) for arg in getattr(annotation, "__args__", ()))


class Query(_Input):
    """A query string: unknown parameters are refused; values are coerced from text ("2" -> 2; an integer only as
    QUERY_INTEGER writes it); no text holds a control character."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _integers_as_written(cls, value: Any, info: ValidationInfo) -> Any:
        """Only checks the text: pydantic converts it (and a body model sharing these fields, being strict, still
        refuses the string "2" for 2)."""
        field_info = cls.model_fields.get(info.field_name or "")
        if field_info is None or not _takes_integer(field_info.annotation):
            return value
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and not QUERY_INTEGER.fullmatch(text) for text in texts):
            raise PydanticCustomError("integer_text", "must be an integer in ASCII digits (e.g. 12; a leading '-' "
                                      "only where negative values are allowed), without '+', spaces, '_', a "
                                      "fraction or leading zeros")
        return value


class Reply(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


class PlainText(Reply):
    """A text/plain answer, for callers that read one word (Alipay's notify wants `success`)."""

    text: str


class FileReply(BaseModel):
    """A file download: the view returns a flask Response whose body is the file, of one of `media_types`."""

    media_types: ClassVar[tuple[str, ...]] = ("application/octet-stream",)


ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_8601_text(value: object) -> object:
    """Query values are coerced from text, and pydantic would read `482014` as a Unix time: take ISO 8601 only."""
    if isinstance(value, str) and not ISO_8601.match(value):
        raise ValueError("must be an ISO 8601 time with a UTC offset, e.g. 2026-12-06T08:00:00+08:00")
    return value


@dataclass(frozen=True)
class Years:
    """A time field's metadata: its year as written (before any conversion: year 1 at +05:00 would overflow) within
    whole centuries first..last, checked and documented (a JSON Schema pattern on the text, so that the document does
    not allow the year 0649 the gateway refuses)."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.first % 100 or (self.last + 1) % 100 or self.first > self.last:
            raise ValueError("Years spans whole centuries, e.g. Years(2000, 2199)")

    def check(self, value: datetime) -> datetime:
        if not self.first <= value.year <= self.last:
            raise ValueError(f"the year must be {self.first}-{self.last}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        documented = handler(schema)
        centuries = "|".join(str(c) for c in range(self.first // 100, (self.last + 1) // 100))
        documented["pattern"] = f"^({centuries})[0-9]{{2}}-"
        return documented


# A moment in a body: ISO 8601 with a UTC offset, years 2000-2199.
ShopTime = Annotated[AwareDatetime, Years(2000, 2199)]
# A moment in a query string (`?created_from=`): the same, from text that is ISO 8601 (not a Unix time).
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601_text), Years(2000, 2199)]



def _full_province_name(value: str) -> str:
    full = formats.province_full_name(value)
    if full is None:
        raise PydanticCustomError("province", f"must be {formats.PROVINCE_RULE}")
    return full


_PROVINCE_NAMES = [*formats.PROVINCES, *formats.PROVINCE_SHORT_NAMES]
# A province in a request, full or short ("上海市" or "上海"), passed on as its full name (formats.PROVINCES); the
# document lists every name taken. ProvinceOrEmpty also takes "" (unknown, not given).
Province = Annotated[str, AfterValidator(_full_province_name),
                     WithJsonSchema({"type": "string", "enum": _PROVINCE_NAMES})]
ProvinceOrEmpty = Annotated[str, AfterValidator(lambda value: _full_province_name(value) if value else ""),
                            WithJsonSchema({"type": "string", "enum": ["", *_PROVINCE_NAMES]})]


class PageQuery(Query):
    """`?page=1&page_size=20`, the one pagination of every list."""

    page: int = Field(1, ge=1, le=10_000)
    page_size: int = Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class Page(Reply, Generic[T]):
    """One page of a list: `{"items": [...], "page", "page_size", "total"}`."""

    items: list[T]
    page: int
    page_size: int
    total: int

    @classmethod
    def of(cls, items: list[T], query: PageQuery, total: int) -> Page[T]:
        return cls(items=items, page=query.page, page_size=query.page_size, total=total)

    @classmethod
    def of_whole(cls, every: list[T], query: PageQuery) -> Page[T]:
        """The query's page of a short list a service answers whole (addresses, browsing history)."""
        return cls.of(every[query.offset:query.offset + query.page_size], query, len(every))


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    access: str = SHOPPER                               # PUBLIC, OPTIONAL, TOLERANT, SHOPPER, or staff via roles
    roles: frozenset[str] = frozenset()                 # when set, the caller needs one of them
    body: type[Body] | None = None
    query: type[Query] | None = None
    responses: dict[int, type[BaseModel]] = field(default_factory=dict)  # status -> model
    limits: tuple[Limit, ...] = ()                      # per-IP limits before the body is validated, body-keyed after
    description: str = ""
    idempotent: bool = False                            # needs the header Idempotency-Key, passed to the view
    key_optional: bool = False                          # with idempotent: the header may be left out (view gets "")
    files: tuple[str, ...] = ()                         # multipart/form-data file fields the view reads (documented)


def operation(*, summary: str, tag: str, access: str = SHOPPER, roles: tuple[str, ...] = (),
              body: type[Body] | None = None, query: type[Query] | None = None,
              responses: dict[int, type[BaseModel]] | None = None, limits: tuple[Limit, ...] = (),
              description: str = "", idempotent: bool = False, key_optional: bool = False,
              files: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declare a view's operation; the view gets `body=` / `query=` models (and `idempotency_key=` when
    `idempotent`, "" when `key_optional` and the header was left out) and returns a response model. A view reading
    uploaded files (request.files) names their fields in `files`, which documents its body as multipart/form-data."""
    if body is not None and files:
        raise TypeError("an operation takes a JSON body or multipart files, not both")
    if key_optional and not idempotent:
        raise TypeError("key_optional=True is for operations declared idempotent=True")
    op = Operation(summary=summary, tag=tag, access=access, roles=frozenset(roles), body=body, query=query,
                   responses=responses or {}, limits=limits, description=description, idempotent=idempotent,
                   key_optional=key_optional, files=files)

    def decorate(view: F) -> F:
        if ("idempotency_key" in inspect.signature(view).parameters) != idempotent:
            raise TypeError(f"{view.__qualname__}: a view takes the keyword idempotency_key exactly when its "
                            "operation is declared idempotent=True")

        @functools.wraps(view)
        def run(**path: Any) -> Response:
            inputs = {name: g.get(name) for name in ("body", "query", "idempotency_key")
                      if (op.idempotent if name == "idempotency_key" else getattr(op, name) is not None)}
            return _respond(op, view(**path, **inputs))

        run.operation = op  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]
    return decorate


def _respond(op: Operation, result: Any) -> Response:
    if isinstance(result, Response):  # a file (FileReply), or a reply rendered earlier (gateway/catalog_cache.py)
        if result.status_code not in op.responses:
            raise TypeError(f"{request.endpoint} answered {result.status_code}, which it does not declare")
        return result
    model, status = result if isinstance(result, tuple) else (result, 200)
    declared = op.responses.get(status)
    if declared is None or not isinstance(model, declared):
        raise TypeError(f"{request.endpoint} answered {status} with {type(model).__name__}, "
                        f"but declares {declared.__name__ if declared else 'no model'} for it")
    if isinstance(model, PlainText):
        return Response(model.text, status=status, mimetype="text/plain")
    response = jsonify(model.model_dump(mode="json", by_alias=True))
    response.status_code = status
    return response


def conditional(response: Response, **ranges: Any) -> Response:
    """`response` (its ETag set) as the request's conditions want it: 412 PRECONDITION_FAILED, in the error format,
    when If-Match names none of its ETags; else werkzeug's make_conditional (304 to an If-None-Match it meets;
    `ranges`, accept_ranges and complete_length, for a 206). werkzeug would answer that 412 itself, with the response
    as its body, and to If-Match: * too, which any existing resource meets (RFC 9110 13.1.1)."""
    if_match = request.if_match
    if if_match and not if_match.star_tag and not if_match.is_strong(response.get_etag()[0] or ""):
        return error_response(ApiError(412, "PRECONDITION_FAILED", "If-Match names no current version of this resource"))
    environ = {name: value for name, value in request.environ.items() if name != "HTTP_IF_MATCH"}
    return response.make_conditional(environ, **ranges)


def current_operation() -> Operation | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "operation", None)


def validate_query(op: Operation) -> None:
    """Every query string is checked: UTF-8 throughout, then against the operation's model, or refused when it
    declares none."""
    not_utf8 = _not_utf8(request.query_string)
    if not_utf8:
        raise ApiError(400, "QUERY_ENCODING_INVALID", "the query string must be UTF-8 (percent-encoded)",
                       {_field_name(name): "not valid UTF-8" for name in not_utf8[:MAX_DETAILS]})
    args = request.args
    if op.query is None:
        if args:
            raise ApiError(400, "INVALID_REQUEST", "the request query is invalid",
                           {_field_name(name): "unknown parameter" for name in list(args)[:MAX_DETAILS]})
        return
    repeated = [name for name in args if not _is_list(op.query, name) and len(args.getlist(name)) > 1]
    if repeated:  # ?status=A&status=B: never silently take one of them
        raise ApiError(400, "INVALID_REQUEST", "the request query is invalid",
                       {_field_name(name): "given more than once" for name in repeated[:MAX_DETAILS]})
    values = {name: (_list_values(args.getlist(name)) if _is_list(op.query, name) else args.get(name))
              for name in args}
    try:
        g.query = op.query.model_validate(values)
    except ValidationError as exc:
        raise invalid("query", exc) from None


def _not_utf8(query_string: bytes) -> list[str]:
    """The parameters of the raw `query_string` whose name or value, percent-decoded, is not UTF-8 (named with each
    such byte as \\xNN). Werkzeug reads `?q=%ff` as the text "%FF", a search for what nobody typed, and fails (a
    500) on a raw byte that is not UTF-8."""
    try:  # the whole string decodes when every parameter does (they are split at ASCII '&' and '='): the usual case
        unquote_to_bytes(query_string.replace(b"+", b" ")).decode()
        return []
    except UnicodeDecodeError:
        pass
    bad: list[str] = []
    # latin-1 maps each byte to one character and back: the pairs are split and percent-decoded as Werkzeug does,
    # the decoded bytes kept as they are
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        try:
            name.encode("latin-1").decode()
            value.encode("latin-1").decode()
        except UnicodeDecodeError:
            bad.append(name.encode("latin-1").decode(errors="backslashreplace"))
    return list(dict.fromkeys(bad))


def validate_body(op: Operation) -> None:
    """The JSON body checked against the operation's model (400 with per-field details)."""
    assert op.body is not None
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=True)
    repeated = _repeated_keys(data)
    if repeated:  # {"quantity": 1, "quantity": 999}: never silently take one of them (nor the last, as parsers do)
        raise ApiError(400, "INVALID_REQUEST", "the request body is invalid",
                       {_field_name(name): "given more than once" for name in repeated[:MAX_DETAILS]})
    try:
        g.body = op.body.model_validate_json(data)
    except ValidationError as exc:
        whole = _whole_numbers(data) if any(e["type"] == "int_type" for e in exc.errors()) else None
        if whole is None:
            raise invalid("body", exc) from None
        try:  # the same body with 2.0 written 2: what the OpenAPI document (JSON Schema) calls an integer
            g.body = op.body.model_validate_json(whole)
        except ValidationError as again:
            raise invalid("body", again) from None


def _repeated_keys(data: bytes) -> list[str]:
    """The names given more than once in one object of the JSON `data`, at any depth (as decoded: "a" and "\\u0061"
    are one name); [] when none, or when `data` is no JSON (the model then says what is wrong with it)."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        named = dict(items)
        if len(named) < len(items):
            seen: set[str] = set()
            for name, _ in items:
                if name in seen:
                    repeated.append(name)
                seen.add(name)
        return named

    try:
        json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return []
    return list(dict.fromkeys(repeated))


def _whole_numbers(data: bytes) -> bytes | None:
    """`data` (JSON) with each whole number written with a fraction or an exponent (2.0, 2e0, 1.5e1) rewritten as an
    integer, read from its text (exactly, even past 2**53); None when there is none. JSON has one number type and to
    JSON Schema 2.0 is the integer 2, while pydantic's strict int refuses every float."""
    rewritten = False

    def number(text: str) -> int | float:
        nonlocal rewritten
        value = decimal.Decimal(text)
        if value.adjusted() <= MAX_WHOLE_DIGITS and value == value.to_integral_value():  # never build 10**10**9
            rewritten = True
            return int(value)
        return float(text)

    try:
        parsed = json.loads(data, parse_float=number)
    except (ValueError, RecursionError):  # already refused as it stands; nothing better to say
        return None
    return json.dumps(parsed).encode() if rewritten else None


def invalid(where: str, exc: ValidationError) -> ApiError:
    """A 400 naming each bad field and what is wrong with it, never repeating the value sent."""
    details: dict[str, object] = {}
    for problem in exc.errors(include_url=False, include_input=False, include_context=False):
        if problem["type"] == "json_invalid":
            details.setdefault(where, "not valid JSON (or nested too deeply)")
            continue
        name = ".".join(_field_name(part) for part in problem["loc"]) or where
        details.setdefault(name, problem["msg"])
        if len(details) >= MAX_DETAILS:
            break
    return ApiError(400, "INVALID_REQUEST", f"the request {where} is invalid", details)


def _field_name(part: object) -> str:
    text = str(part)
    return text if len(text) <= MAX_FIELD_NAME else text[:MAX_FIELD_NAME] + "…"


def _is_list(model: type[BaseModel], name: str) -> bool:
    """Whether the query model's field `name` takes several values (list[...], or list[...] | None)."""
    info = model.model_fields.get(name)
    annotation = info.annotation if info is not None else None
    return any(getattr(kind, "__origin__", None) is list for kind in (annotation, *getattr(annotation, "__args__", ())))


def _list_values(given: list[str]) -> list[str]:
    """A list parameter's values (LIST_QUERY_NOTE): each one given, split at its commas."""
    return [value for text in given for value in text.split(",")]


class IdConverter(BaseConverter):
    """`<id:order_id>`: a positive id that fits in int64; anything else is a 404, not a 500."""

    regex = r"[1-9][0-9]{0,17}"
    part_isolating = True
    schema: ClassVar[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


class NumberConverter(BaseConverter):
    """`<no:refund_no>`: a business number (a recharge's, a refund's: letters, digits, `_`, `-`, 1-64 of them,
    formats.BUSINESS_NO); anything else names nothing and is a 404 before any service is asked."""

    regex = formats.BUSINESS_NO
    part_isolating = True
    schema: ClassVar[dict[str, Any]] = {"type": "string", "pattern": formats.anchored(formats.BUSINESS_NO)}


class TextConverter(BaseConverter):
    """A plain `<name>` (werkzeug's default converter): one path segment without control characters (see
    CONTROL_CHARACTER), which name nothing and are a 404 rather than text for a service to store or look up."""

    regex = r"[^/\x00-\x1f\x7f]+"
    part_isolating = True
    schema: ClassVar[dict[str, Any]] = {"type": "string", "pattern": "^[^/\\u0000-\\u001f\\u007f]+$"}


CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {"id": IdConverter.schema, "no": NumberConverter.schema,
                                                 "default": TextConverter.schema, "string": TextConverter.schema}


# What a token's refusal says, for every route that takes one.
BEARER_NOTE = ("An access token from a login or refresh. 401 AUTH_REQUIRED without one; 401 TOKEN_INVALID or "
               "TOKEN_EXPIRED; 401 SESSION_ENDED once its session has ended (a logout, logout everywhere, a password "
               "changed, reset or set by an admin, staff roles taken away): refresh, or log in again. 403 FORBIDDEN "
               "on a route its roles (x-roles) do not allow. 503 SESSION_CHECK_UNAVAILABLE on a staff route while "
               "whether the session has ended cannot be checked.")


def init_app(app: Any) -> None:
    app.url_map.converters.update(id=IdConverter, no=NumberConverter, default=TextConverter, string=TextConverter)


def openapi_spec(app: Any) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the registered routes and their Operations."""
    operations = [(rule, method, op) for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
                  if (op := getattr(app.view_functions.get(rule.endpoint), "operation", None)) is not None
                  for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    schemas, refs = _component_schemas([op for _, _, op in operations])
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary, "tags": [op.tag], "operationId": f"{rule.endpoint}_{method.lower()}",
            "responses": {str(status): {"description": model.__doc__.splitlines()[0] if model.__doc__ else "",
                                        "content": _content(model, refs)}
                          for status, model in sorted(op.responses.items())},
        }
        entry["responses"]["default"] = {"$ref": "#/components/responses/Error"}
        if op.access in (OPTIONAL, TOLERANT):
            entry["security"] = [{}, {"bearer": []}]
        elif op.access != PUBLIC:
            entry["security"] = [{"bearer": []}]
        idempotency_notes = [OPTIONAL_IDEMPOTENCY_NOTE if op.key_optional else IDEMPOTENCY_NOTE] if op.idempotent else []
        notes = idempotency_notes + ([op.description] if op.description else [])
        if op.roles:
            notes.append("Roles: " + ", ".join(sorted(op.roles)) + ".")
            entry["x-roles"] = sorted(op.roles)  # machine-readable: the battery generates its 403 checks from it
        if op.limits:
            notes.append("Rate limits (sliding windows): " + "; ".join(
                f"{lim.count} in any {lim.seconds}s per {lim.key}" + (f" ({lim.scope}: counted with other routes)" if lim.scope else "")
                for lim in op.limits)
                + " (429 RATE_LIMITED with Retry-After).")
        if notes:
            entry["description"] = " ".join(notes)
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[op.body, "validation"]}}}
        if op.files:
            entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": list(op.files),
                "properties": {name: {"type": "string", "format": "binary"} for name in op.files}}}}}
        parameters = _path_parameters(rule) + _query_parameters(op) + _header_parameters(op)
        if parameters:
            entry["parameters"] = parameters
        paths.setdefault(_openapi_path(rule), {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "MiniMall API", "version": "1.0.0",
                 "description": f"Money is integer fen (*_fen); times are ISO 8601 UTC. {TEXT_NOTE} "
                                f"{QUERY_INTEGER_NOTE} {LIST_QUERY_NOTE} {OPTIONS_NOTE}"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": BEARER_NOTE}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}},
        },
    }


def _content(model: type[BaseModel], refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    if issubclass(model, PlainText):
        return {"text/plain": {"schema": {"type": "string"}}}
    if issubclass(model, FileReply):
        return {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in model.media_types}
    return {"application/json": {"schema": refs[model, "serialization"]}}


def _component_schemas(ops: list[Operation]) -> tuple[dict[str, Any], dict[tuple[type[BaseModel], str], Any]]:
    wanted = {(op.body, "validation") for op in ops if op.body is not None}
    wanted |= {(model, "serialization") for op in ops for model in op.responses.values()
               if not issubclass(model, PlainText | FileReply)}
    ordered = sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1]))
    refs, defs = models_json_schema(ordered, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    return defs.get("$defs", {}), refs  # type: ignore[return-value]


RULE_VARIABLE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def _openapi_path(rule: Any) -> str:
    return RULE_VARIABLE.sub(lambda m: "{" + m.group(2) + "}", rule.rule)


def _path_parameters(rule: Any) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True,
             "schema": CONVERTER_SCHEMAS.get(converter or "default", {"type": "string"})}
            for converter, name in RULE_VARIABLE.findall(rule.rule)]


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            | ({"style": "form", "explode": True, "description": LIST_QUERY_NOTE} if _is_list(op.query, name) else {})
            for name, prop in schema.get("properties", {}).items()]


def _header_parameters(op: Operation) -> list[dict[str, Any]]:
    if not op.idempotent:
        return []
    return [{"name": IDEMPOTENCY_HEADER, "in": "header", "required": not op.key_optional,
             "schema": IDEMPOTENCY_KEY_SCHEMA,
             "description": "Chosen by the client, one per intended action: a retry with the same key and body "
                            "answers as the first request did and changes nothing; the same key with another "
                            "body is 409 IDEMPOTENCY_KEY_REUSED."}]


def validate_idempotency_key(op: Operation) -> None:
    """The Idempotency-Key header of an idempotent operation, checked; 400 when malformed, or missing unless the
    operation declares it optional ("" then)."""
    if not op.idempotent:
        return
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None and op.key_optional:
        g.idempotency_key = ""
        return
    if key is None:
        raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED", f"this request needs an {IDEMPOTENCY_HEADER} header",
                       {IDEMPOTENCY_HEADER: "required"})
    idempotency.validate("gateway", key)
    g.idempotency_key = key


def enforce_limits(limits: tuple[Limit, ...], body: dict[str, Any] | None = None,
                   caller: dict[str, str] | None = None) -> None:
    """Count this request under `limits`, keyed by the connection, the caller (caller_values) and the body's text
    fields; 429 RATE_LIMITED with Retry-After at the first one that is full."""
    if not limits:
        return
    # The connection's and the caller's parts last: a body field of the same name never stands in for them.
    values = ({k: v for k, v in (body or {}).items() if isinstance(v, str)} | client_values(request.remote_addr)
              | (caller or {}))
    wait = current_app.extensions["rate_limiter"].check(request.endpoint or "", limits, values)
    if wait is not None:
        raise ApiError.too_many_requests(wait)


def service(stub_class: type[StubT]) -> StubT:
    """A backing service's stub for this request: deadline, request id and caller are passed on."""
    return current_app.extensions["clients"].get(stub_class)
