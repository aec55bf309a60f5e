"""make run's pid file: a second `make run` must not clobber the first one's, `make stop` must find it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devrun

HOLD_THE_LOCK = """
import sys
from pathlib import Path
from tools import devrun
held = devrun.claim_pid_file(Path(sys.argv[1]))
print("held" if held else "refused", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def pid_file(tmp_path: Path) -> Path:
    return tmp_path / "devrun.pid"


@pytest.fixture
def other_devrun(pid_file: Path) -> Iterator[int]:
    """Another live process that claimed `pid_file` as devrun does; its pid."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(pid_file)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=Path(devrun.__file__).parents[1])
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process.pid
    process.kill()
    process.wait()


def test_the_devrun_holding_the_pid_file_is_found(pid_file: Path, other_devrun: int) -> None:
    assert devrun.running_devrun(pid_file) == other_devrun
    assert devrun.claim_pid_file(pid_file) is None
    assert pid_file.read_text() == str(other_devrun)


@pytest.mark.parametrize("content", ["", "not a pid", "999999999", str(os.getpid())],
                         ids=["empty", "garbage", "dead-pid", "our-own-pid-after-a-container-restart"])
def test_a_pid_file_nobody_holds_does_not_block_a_start(pid_file: Path, content: str) -> None:
    pid_file.write_text(content)

    assert devrun.running_devrun(pid_file) is None
    claimed = devrun.claim_pid_file(pid_file)
    assert claimed is not None
    claimed.close()
    assert pid_file.read_text() == str(os.getpid())


def test_a_second_make_run_refuses_and_leaves_the_first_ones_pid_file(
        pid_file: Path, other_devrun: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MINIMALL_VAR", str(pid_file.parent))
    monkeypatch.setattr(sys, "argv", ["devrun"])
    monkeypatch.setattr(devrun, "platform_env", lambda var: pytest.fail("a second platform was started"))

    assert devrun.main() == 1
    assert pid_file.read_text() == str(other_devrun)
    assert f"already running from {pid_file.parent} (pid {other_devrun})" in capsys.readouterr().err
