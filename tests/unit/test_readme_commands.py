"""Every `make` target and `python -m ...` command the documentation tells an operator to run exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from services.common.config import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "deploy" / "k8s" / "README.md", ROOT / "bench" / "README.md",
        ROOT / "tools" / "simulator" / "README.md", *sorted(ROOT.glob("services/*/README.md"))]
MAKE = re.compile(r"`make ([a-z0-9][a-z0-9-]*)")
PYTHON_M = re.compile(r"python3? -m ([\w.<>]+)([^`\n]*)")


def _documented(pattern: re.Pattern[str]) -> list[tuple[str, re.Match[str]]]:
    return [(f"{path.relative_to(ROOT)}", match) for path in DOCS
            for match in pattern.finditer(path.read_text(encoding="utf-8"))]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z0-9][a-z0-9-]*):", text, flags=re.MULTILINE))


def _main_file(module: str) -> Path | None:
    """The file `python -m module` runs, or None when there is none."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    if spec.submodule_search_locations:  # a package runs its __main__
        main = Path(spec.origin).parent / "__main__.py"
        return main if main.exists() else None
    return Path(spec.origin)


def service_commands(service: str) -> set[str]:
    """The commands `python -m services.<service>` takes: services/common/runtime.py's and its own `commands=`."""
    runtime = (ROOT / "services" / "common" / "runtime.py").read_text(encoding="utf-8")
    roles = ast.literal_eval(re.search(r"^ROLES = (\(.*?\))", runtime, flags=re.MULTILINE).group(1))
    own: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / "services" / service / "__main__.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "commands" and isinstance(node.value, ast.Dict):
            own |= {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    return {"all", *roles, "migrate", "wait-migrated", *own}


def documented_commands() -> list[tuple[str, str, str, list[str]]]:
    """(doc, module, command or "", --options) of each `python -m` in the docs; services.<name> once per service."""
    found = []
    for doc, match in _documented(PYTHON_M):
        module = match.group(1).rstrip(".")
        rest = re.split(r"\s(?:&&|\|\||>|;|\|)\s", match.group(2))[0]  # up to the next command of the shell line
        words = rest.split()
        command = words[0] if words and re.fullmatch(r"[a-z][a-z-]*", words[0]) else ""
        options = re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest)
        modules = [module.replace("<name>", s) for s in SERVICES] if "<name>" in module else [module]
        found += [(doc, m, command, options) for m in modules]
    return found


def test_the_docs_name_make_targets_and_commands() -> None:
    assert {"run", "test", "audit", "bench"} <= {match.group(1) for _, match in _documented(MAKE)}
    assert {("services.user", "service-token"), ("services.product", "seed")} <= {
        (module, command) for _, module, command, _ in documented_commands()}


def test_every_make_target_the_docs_name_is_in_the_makefile() -> None:
    targets = makefile_targets()

    assert sorted({(doc, match.group(1)) for doc, match in _documented(MAKE) if match.group(1) not in targets}) == []


def test_every_makefile_target_is_in_the_readme() -> None:
    named = {match.group(1) for doc, match in _documented(MAKE) if doc == "README.md"}

    assert sorted(makefile_targets() - named) == []


def test_every_module_the_docs_run_with_python_m_can_run() -> None:
    assert sorted({(doc, module) for doc, module, _, _ in documented_commands() if _main_file(module) is None}) == []


def test_every_service_command_the_docs_name_exists() -> None:
    unknown = {(doc, module, command) for doc, module, command, _ in documented_commands()
               if module.startswith("services.") and module.count(".") == 1 and command
               and command not in service_commands(module.split(".")[1])}

    assert sorted(unknown) == []


def test_every_option_the_docs_pass_is_one_the_command_takes() -> None:
    unknown = set()
    for doc, module, _, options in documented_commands():
        main = _main_file(module)
        source = main.read_text(encoding="utf-8") if main else ""
        unknown |= {(doc, module, option) for option in options if f'"{option}"' not in source}

    assert sorted(unknown) == []


def test_the_layout_lists_the_commands_every_service_takes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.search(r"__main__ \(([a-z|-]+)\)", readme).group(1).split("|"))

    assert {service: sorted(listed - service_commands(service)) for service in SERVICES} == {
        service: [] for service in SERVICES}
