"""The environment variables the code reads and the ones its documentation names are the same, both ways.

services/ and gateway/ (and tools/devrun.py, `make run`) against README.md's "Ports and environment" table;
tools/simulator against its README; bench/ against bench/README.md; and every variable deploy/k8s sets for a
MiniMall container is one the code reads. The scan reads the code's syntax tree: a name read through `Env`, an
environ mapping, or a helper handed the `Env` (read_key(env, "NAME"), callback_url(env, "NAME", ...)).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ENV_METHODS = {"str", "int", "int_within", "float", "bool", "optional", "get", "pop"}
MAPPINGS = {"env", "environ", "os.environ", "self.environ", "env.environ", "settings.environ"}
NAME = re.compile(r"[A-Z][A-Z0-9_]*_[A-Z0-9_]+|[A-Z]{3,}")
# Keys of a WSGI environ (gateway/bodylimit.py, services/common/metrics.py), not environment variables.
WSGI_KEYS = {"HTTP_TRANSFER_ENCODING", "CONTENT_LENGTH", "PATH_INFO"}
# Variables read in code but deliberately not in the README's table: name -> why.
NOT_DOCUMENTED: dict[str, str] = {}
# Set for MiniMall containers in deploy/k8s but read by something else than our code: name -> reader.
READ_BY_OTHERS = {"GUNICORN_CMD_ARGS": "gunicorn", "AWS_ACCESS_KEY_ID": "boto3", "AWS_SECRET_ACCESS_KEY": "boto3"}


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "VALUE"` string constants (PUBLIC_URL = "MINIMALL_PUBLIC_URL")."""
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _name(node: ast.expr, constants: dict[str, str]) -> str | None:
    """The variable name an argument spells: a literal, a module constant, or f"{prefix}_REST" -> <SVC>_REST."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.Name) and node.id in constants:
        value = constants[node.id]
    elif (isinstance(node, ast.JoinedStr) and len(node.values) == 2 and isinstance(node.values[0], ast.FormattedValue)
          and isinstance(node.values[1], ast.Constant) and str(node.values[1].value).startswith("_")):
        value = "<SVC>" + str(node.values[1].value)
        return value if NAME.fullmatch(value.removeprefix("<SVC>_") + "_X") else None
    else:
        return None
    return value if NAME.fullmatch(value) and value not in WSGI_KEYS else None


def _reads(tree: ast.Module) -> Iterator[str]:
    constants = _constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ENV_METHODS and (
                    ast.unparse(func.value) in MAPPINGS or ast.unparse(func.value) == "Env()"):
                candidates = node.args[:1]
            elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                candidates = node.args[:1]
            elif isinstance(node.args[0], ast.Name) and node.args[0].id == "env":  # helper(env, [base,] "NAME", ...)
                candidates = node.args[1:3]
            else:
                continue
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and ast.unparse(node.value) in MAPPINGS):
            candidates = [node.slice]
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn)
              and ast.unparse(node.comparators[0]) in MAPPINGS):
            candidates = [node.left]
        else:
            continue
        for candidate in candidates:
            if (name := _name(candidate, constants)) is not None:
                yield name


def variables_read(*roots: str) -> dict[str, set[str]]:
    """Each environment variable name read by the Python files under `roots`, with the files reading it."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")) if (ROOT / root).is_dir() else [ROOT / root]:
            for name in _reads(ast.parse(path.read_text(encoding="utf-8"))):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def platform_variables() -> dict[str, set[str]]:
    """What the services, the gateway and `make run` (tools/devrun.py) read: README.md's table documents these."""
    return variables_read("services", "gateway", "tools/devrun.py")


def readme_table() -> tuple[set[str], set[str]]:
    """README.md "Ports and environment": (the names each row is about, every name its rows mention)."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Ports and environment", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    subjects = {name for row in rows for name in re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", row.split(" | ")[0])}
    mentioned = {name for row in rows for name in re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", row)}
    return subjects, mentioned


def test_the_scan_finds_variables_read_each_way() -> None:
    found = platform_variables()

    assert {"MINIMALL_ENV", "GATEWAY_BIND", "ALIPAY_APP_PRIVATE_KEY_FILE", "ALIYUN_SMS_ENDPOINT",
            "PRODUCT_GRPC_TIMEOUT_MS", "ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS",  # Env reads and helpers
            "MINIMALL_PUBLIC_URL",  # through a module constant
            "<SVC>_DATABASE_URL", "<SVC>_GRPC_TARGET",  # f"{prefix}_DATABASE_URL"
            "ADMIN_PASSWORD", "GATEWAY_WORKERS",  # os.environ.get
            "DEV_BROKER_PORT", "KAFKA_BOOTSTRAP_SERVERS"} <= set(found)  # a copy of os.environ; `"X" in environ`
    assert not WSGI_KEYS & set(found)


def test_every_variable_read_is_in_the_readme_table() -> None:
    _, mentioned = readme_table()

    missing = {name: sorted(files) for name, files in platform_variables().items()
               if name not in NOT_DOCUMENTED and name not in mentioned}

    assert missing == {}


def test_every_variable_the_readme_table_is_about_is_read() -> None:
    subjects, _ = readme_table()

    assert subjects - set(platform_variables()) == set()


def test_every_exclusion_is_still_read() -> None:
    assert set(NOT_DOCUMENTED) - set(platform_variables()) == set()


def test_no_variable_has_two_rows_in_the_readme_table() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Ports and environment", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    subjects = [name for row in rows for name in re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", row.split(" | ")[0])]

    assert sorted({name for name in subjects if subjects.count(name) > 1}) == []


def test_every_variable_the_simulator_reads_is_in_its_readme() -> None:
    readme = (ROOT / "tools" / "simulator" / "README.md").read_text(encoding="utf-8")
    # its own knobs, read through local helpers (text("SIM_...", default)): every SIM_ literal in its code
    own = {name for path in (ROOT / "tools" / "simulator").glob("*.py")
           for name in re.findall(r"[\"'](SIM_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8"))}

    assert "SIM_REALNAME_IDENTITIES" in own
    assert {name for name in own if f"`{name}`" not in readme and f"`{name}=" not in readme} == set()


def test_every_bench_knob_is_in_the_bench_readme() -> None:
    readme = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")

    assert {name for name in variables_read("bench") if name.startswith("BENCH_") and name not in readme} == set()


def _container_variables() -> set[str]:
    """Every variable deploy/k8s sets in a MiniMall container: minimall-config's literals and the env lists of the
    generated manifests (images minimall/...)."""
    names: set[str] = set()
    for path in sorted(K8S.rglob("kustomization.yaml")):
        for generator in yaml.safe_load(path.read_text()).get("configMapGenerator", []):
            if generator["name"] == "minimall-config":
                names |= {literal.split("=", 1)[0] for literal in generator.get("literals", [])}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for container in node.get("containers", []) + node.get("initContainers", []):
                if str(container.get("image", "")).startswith("minimall/"):
                    names.update(variable["name"] for variable in container.get("env", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((K8S / "base").glob("*.yaml")) + sorted((K8S / "components").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            walk(document)
    return names


def test_every_variable_deploy_k8s_sets_is_read() -> None:
    read = set(platform_variables())
    per_service = {name for name in read if name.startswith("<SVC>_")}
    services = ("USER", "PRODUCT", "ORDER", "MEMBER", "ANALYTICS")
    expanded = read | {name.replace("<SVC>", service) for name in per_service for service in services}
    set_in_k8s = _container_variables()

    assert {"MINIMALL_ENV", "USER_DATABASE_URL", "SERVICE_TOKEN", "GATEWAY_BIND"} <= set_in_k8s
    assert set_in_k8s - expanded - set(READ_BY_OTHERS) == set()


def code_defaults() -> dict[str, set[object]]:
    """The literal defaults of `env.str/int/int_within/float/bool("NAME", default)` and `os.environ.get("NAME", ...)`
    under services/ and gateway/ (a name read with other defaults in other places has them all)."""
    found: dict[str, set[object]] = {}
    for root in ("services", "gateway"):
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ENV_METHODS - {"optional", "pop"} and len(node.args) >= 2
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[1], ast.Constant)
                        and isinstance(node.args[0].value, str) and NAME.fullmatch(node.args[0].value)):
                    found.setdefault(node.args[0].value, set()).add(node.args[1].value)
    return found


def _same(documented: str, default: object) -> bool:
    try:
        return float(documented) == float(default)  # `5` documents 5.0, `10000` documents "10000"
    except (TypeError, ValueError):
        return documented == default


def test_each_default_the_readme_table_gives_is_the_codes() -> None:
    """Rows naming n variables whose default cell has n comma-separated entries, each starting with a `literal`:
    the i-th literal is the i-th variable's default in the code (where the code has one literal default)."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Ports and environment", 1)[1]
    defaults = code_defaults()
    wrong, compared = {}, 0
    for row in section.split("\n## ", 1)[0].splitlines():
        if not row.startswith("| `"):
            continue
        cells = row.split(" | ")
        names = re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", cells[0])
        cell = re.sub(r"\([^()]*\)", "", cells[1]).split(";")[0]  # the default itself, not make run's nor bounds
        entries = [entry.strip() for entry in cell.split(", ")]
        if len(entries) != len(names):
            continue
        for name, entry in zip(names, entries, strict=True):
            literal = re.fullmatch(r"`([^`]*)`", entry)
            if literal and len(defaults.get(name, set())) == 1 and defaults[name] != {""}:  # "": computed
                compared += 1
                (default,) = defaults[name]
                if not _same(literal.group(1), default):
                    wrong[name] = (literal.group(1), default)

    assert compared >= 30
    assert wrong == {}
