"""Every error code the services and the gateway can answer with is in docs/error-codes.md, and every code listed
there is still raised somewhere.

The scan reads the syntax tree of services/ and gateway/: the code of every domain error (`DomainError` and its
subclasses, `NotFound("ORDER_NOT_FOUND", ...)`) and every `ApiError(status, "CODE", ...)`, including those raised
through a helper that takes the code as a parameter (`_missing("SKU_NOT_FOUND", ...)`, `passed_on("product")` ->
PRODUCT_UNAVAILABLE), a local chosen between literals, a `code="..."` keyword, and the gateway's fallback codes.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.member.domain import REASONS as COUPON_REASONS
from services.user.realname import VERDICTS as IDENTITY_VERDICTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "error-codes.md"
CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,}")
BASE_ERRORS = {"DomainError", "InvalidInput", "NotFound", "Unauthenticated", "Forbidden", "Conflict", "RateLimited"}
# Raised with a code chosen at run time from a table: member/service.py `DomainError(reason, REASONS[reason])`,
# user/realname.py `error(code, message)` for FaceID's verdict.
FROM_TABLES = {code: "services/member/service.py" for code in COUPON_REASONS} | {
    code: "services/user/realname.py" for _, code, _ in IDENTITY_VERDICTS.values()}

Template = tuple[tuple[str, str], ...]  # ("text", "ORDER_") or ("param", name) or ("PARAM", name): .upper()


def _files() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for root in ("services", "gateway")
            for path in sorted((ROOT / root).rglob("*.py"))]


def _error_classes(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """DomainError's subclasses, transitively, and ApiError."""
    classes = set(BASE_ERRORS)
    while True:
        more = {node.name for _, tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                and any(ast.unparse(base).split(".")[-1] in classes for base in node.bases)} - classes
        if not more:
            return classes | {"ApiError"}
        classes |= more


def _callee(call: ast.Call) -> str:
    return ast.unparse(call.func).split(".")[-1]


def _code_argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[position] if len(call.args) > position else None


def _templates(node: ast.expr, params: set[str], local: dict[str, ast.expr]) -> Iterator[Template]:
    """What a code expression can be, in terms of literals and the enclosing function's parameters."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield (("text", node.value),)
    elif isinstance(node, ast.Name) and node.id in params:
        yield (("param", node.id),)
    elif isinstance(node, ast.BoolOp):  # quote.reason or "COUPON_NOT_USABLE"
        for value in node.values:
            yield from _templates(value, params, local)
    elif isinstance(node, ast.Name) and node.id in local:  # code = "A" if ... else "B"
        for constant in ast.walk(local[node.id]):
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                yield (("text", constant.value),)
    elif isinstance(node, ast.JoinedStr):
        parts: list[tuple[str, str]] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(("text", str(value.value)))
            elif isinstance(value.value, ast.Name) and value.value.id in params:
                parts.append(("param", value.value.id))
            elif (isinstance(value.value, ast.Call) and _callee(value.value) == "upper"
                  and isinstance(value.value.func, ast.Attribute) and isinstance(value.value.func.value, ast.Name)
                  and value.value.func.value.id in params):
                parts.append(("PARAM", value.value.func.value.id))
            else:
                return
        yield tuple(parts)


def _fill(template: Template, values: dict[str, str]) -> str | None:
    text = ""
    for kind, part in template:
        if kind == "text":
            text += part
        elif part in values:
            text += values[part].upper() if kind == "PARAM" else values[part]
        else:
            return None
    return text


@dataclass
class _Scope:
    """A function (or a module's top level) as the scan needs it, walked once."""

    where: str
    name: str
    params: list[str]
    defaults: dict[str, str]
    local: dict[str, ast.expr]
    calls: list[ast.Call]


def _scopes(path: Path, tree: ast.Module) -> Iterator[_Scope]:
    where = str(path.relative_to(ROOT))
    constants = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                 for t in n.targets if isinstance(t, ast.Name)}
    for node in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]:
        nodes = list(ast.walk(node))
        local = constants | {t.id: n.value for n in nodes if isinstance(n, ast.Assign)
                             for t in n.targets if isinstance(t, ast.Name)}
        calls = [n for n in nodes if isinstance(n, ast.Call)]
        if isinstance(node, ast.Module):
            yield _Scope(where, "", [], {}, local, calls)
            continue
        params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        params = params[1:] if params[:1] in (["self"], ["cls"]) else params  # called as obj.method(...)
        defaults = {a.arg: d.value for a, d in zip(reversed(node.args.args), reversed(node.args.defaults), strict=False)
                    if isinstance(d, ast.Constant) and isinstance(d.value, str)}
        yield _Scope(where, node.name, params, defaults, local, calls)


@functools.cache
def codes_raised() -> dict[str, set[str]]:
    """Each error code the code can raise or answer with, and the files it is raised in."""
    trees = _files()
    errors = _error_classes(trees)
    # emitters: callable name -> (parameter names in order, templates of the code in terms of them, defaults)
    emitters: dict[str, tuple[list[str], set[Template], dict[str, str]]] = {
        name: (["code"], {(("param", "code"),)}, {}) for name in errors - {"ApiError"}}
    emitters["ApiError"] = (["status", "code"], {(("param", "code"),)}, {})
    found: dict[str, set[str]] = {}
    for path, tree in trees:
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            calls = [n for n in ast.walk(cls) if isinstance(n, ast.Call)]
            if cls.name in errors:
                for call in calls:
                    if isinstance(call.func, ast.Name) and call.func.id == "cls":  # cls(429, code, ...) builds it
                        call.func.id = cls.name
                # an error class naming its own code: super().__init__("BRAND_EXISTS", ...), or a local chosen
                # between literals (InsufficientFunds)
                for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
                    local = {t.id: n.value for n in ast.walk(method) if isinstance(n, ast.Assign)
                             for t in n.targets if isinstance(t, ast.Name)}
                    for call in (n for n in ast.walk(method) if isinstance(n, ast.Call)):
                        if ast.unparse(call.func) == "super().__init__" and call.args:
                            for template in _templates(call.args[0], set(), local):
                                if (code := _fill(template, {})) and CODE.fullmatch(code):
                                    found.setdefault(code, set()).add(str(path.relative_to(ROOT)))
                continue
            # a record raising its own field as the code: AttemptLimit("password-wrong", ..., "PASSWORD_LOCKED", ...)
            fields = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
            raised = {argument.attr for call in calls if _callee(call) in errors
                      and isinstance(argument := _code_argument(call, 0, "code"), ast.Attribute)
                      and ast.unparse(argument.value) == "self"} & set(fields)
            if raised:
                emitters[cls.name] = (fields, {(("param", field),) for field in raised}, {})
    scopes = [scope for path, tree in trees for scope in _scopes(path, tree)]
    changed = True
    while changed:  # helpers that pass a parameter on as the code, helpers of helpers...
        changed = False
        for scope in scopes:
            if not scope.name or scope.name in errors:
                continue
            passed: set[Template] = set()
            for call in scope.calls:
                if (emitter := emitters.get(_callee(call))) is None:
                    continue
                names, inner, _ = emitter
                for index, name in enumerate(names):
                    argument = _code_argument(call, index, name)
                    if argument is not None and any(("param", name) in t or ("PARAM", name) in t for t in inner):
                        passed |= {template for template in _templates(argument, set(scope.params), scope.local)
                                   if any(kind != "text" for kind, _ in template)}
            known = emitters.get(scope.name, ([], set(), {}))[1]
            if passed and not passed <= known:
                emitters[scope.name] = (scope.params, passed | known, scope.defaults)
                changed = True
    for scope in scopes:
        for call in scope.calls:
            if (emitter := emitters.get(_callee(call))) is None:
                continue
            names, templates, defaults = emitter
            values: dict[str, list[str]] = {}
            for index, name in enumerate(names):
                argument = _code_argument(call, index, name)
                if argument is None:
                    values[name] = [defaults[name]] if name in defaults else []
                else:
                    values[name] = [t[0][1] for t in _templates(argument, set(scope.params), scope.local)
                                    if len(t) == 1 and t[0][0] == "text"]
            for template in templates:
                used = [part for kind, part in template if kind != "text"]
                for choice in _choices({name: values.get(name, []) for name in used}):
                    if (code := _fill(template, choice)) and CODE.fullmatch(code):
                        found.setdefault(code, set()).add(scope.where)
    from gateway.errors import FALLBACK_CODES, GONE_CODES

    for code in {*FALLBACK_CODES.values(), *GONE_CODES, "ERROR"}:
        found.setdefault(code, set()).add("gateway/errors.py")
    for code, where in FROM_TABLES.items():
        found.setdefault(code, set()).add(where)
    return found


def _choices(options: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    if not options:
        yield {}
        return
    name, *rest = options
    for value in options[name]:
        for tail in _choices({key: options[key] for key in rest}):
            yield {name: value, **tail}


def documented_codes() -> set[str]:
    """The codes docs/error-codes.md's tables list (first column)."""
    return {match for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
            for match in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ")[0])}


def test_the_scan_finds_codes_raised_each_way() -> None:
    found = codes_raised()

    assert {"ORDER_NOT_FOUND", "OUT_OF_STOCK",  # NotFound("...") and a subclass with its own code
            "INSUFFICIENT_POINTS", "INSUFFICIENT_BALANCE",  # a local chosen between two literals
            "PRODUCT_UNAVAILABLE", "WECHATPAY_UNAVAILABLE",  # helpers building the code from a parameter
            "SMS_DAILY_BUDGET_EXHAUSTED", "RATE_LIMITED",  # ApiError.too_many_requests(code=...) and its default
            "SESSION_CHECK_UNAVAILABLE", "INVALID_REQUEST", "BRAND_EXISTS"} <= set(found)
    assert not {"PENDING_PAYMENT", "ORDER_PAID"} & set(found)  # states and event names are not error codes


def test_every_code_raised_is_documented() -> None:
    documented = documented_codes()

    assert {code: sorted(files) for code, files in codes_raised().items() if code not in documented} == {}


def test_every_code_documented_is_still_raised() -> None:
    assert sorted(documented_codes() - set(codes_raised())) == []


def test_every_status_and_code_the_readmes_mention_is_a_listed_pair() -> None:
    """"answers 409 ID_NUMBER_TAKEN" in a README is a code of docs/error-codes.md with that status. (The simulator's
    README quotes WeChat Pay's own codes, not ours.)"""
    statuses = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"\| `(\w+)` \| ([^|]+) \|", line):
            statuses[match.group(1)] = set(re.findall(r"\d{3}|any", match.group(2)))
    readmes = [ROOT / "README.md", ROOT / "deploy" / "k8s" / "README.md", *sorted(ROOT.glob("services/*/README.md"))]
    mentioned = {(str(path.relative_to(ROOT)), status, code) for path in readmes
                 for status, code in re.findall(rf"\b([45]\d\d) `?({CODE.pattern})`?", path.read_text(encoding="utf-8"))}

    assert len(mentioned) >= 20
    assert sorted((doc, status, code) for doc, status, code in mentioned
                  if not {status, "any"} & statuses.get(code, set())) == []
