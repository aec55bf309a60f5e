"""Generate Python code (+ .pyi stubs) for every proto under protos/ into gen/; --check compares instead."""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"


def generate(out: Path) -> None:
    """Run protoc over all protos, writing packages (with __init__.py files) under `out`."""
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for directory in [out / "mall", *(p for p in (out / "mall").rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def differences(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two generated trees."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    changed = {p for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False)}
    return sorted(str(p) for p in (files_a ^ files_b) | changed)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = differences(Path(tmp), GEN) if GEN.exists() else ["gen/ is missing"]
        if stale:
            print("generated code is stale or hand-edited; run `make protos`:", *stale, sep="\n  ")
            return 1
        print("generated code matches protos/")
        return 0
    GEN.mkdir(exist_ok=True)
    for old in GEN.rglob("*_pb2*.py*"):
        old.unlink()
    generate(GEN)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
