"""Every environment variable the services and the gateway read is named in README.md, so its table cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("services", "gateway")
_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
READS = (
    # Env(...).str / int / int_within / float / bool / optional("NAME", ...)
    re.compile(r"\b(?:env|Env\(\))\s*\.\s*(?:str|int|int_within|float|bool|optional)\(\s*" + _NAME),
    # os.environ["NAME"], os.environ.get("NAME", ...)
    re.compile(r"\bos\.environ\s*(?:\.get\(|\[)\s*" + _NAME),
    # helpers handed the Env and a literal name: read_key(env, "NAME"), _endpoint(env, base, "NAME", ...)
    re.compile(r"\w\(\s*env\s*,\s*(?:\w+\s*,\s*)?" + _NAME),
)
# Variables read in code but deliberately not in the README's table: name -> why.
NOT_DOCUMENTED: dict[str, str] = {}


def variables_read() -> dict[str, set[str]]:
    """Each literal environment variable name read under services/ and gateway/, with the files reading it."""
    found: dict[str, set[str]] = {}
    for root in SCANNED:
        for path in sorted((ROOT / root).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern in READS:
                for match in pattern.finditer(text):
                    found.setdefault(match.group(1), set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_variables_read_each_way() -> None:
    found = variables_read()

    assert {"MINIMALL_ENV", "GATEWAY_BIND", "ALIPAY_APP_PRIVATE_KEY_FILE", "ALIYUN_SMS_ENDPOINT",
            "PRODUCT_GRPC_TIMEOUT_MS", "ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS"} <= set(found)


def test_every_variable_read_is_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    missing = {name: sorted(files) for name, files in variables_read().items()
               if name not in NOT_DOCUMENTED and not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", readme)}

    assert missing == {}


def test_every_exclusion_is_still_read() -> None:
    assert set(NOT_DOCUMENTED) - set(variables_read()) == set()
