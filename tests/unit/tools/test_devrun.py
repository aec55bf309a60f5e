"""make run's pid file: a second `make run` must not clobber the first one's, `make stop` must find it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devrun


@pytest.fixture
def fake_devrun() -> Iterator[int]:
    """A live process whose command line looks like a devrun's."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "tools.devrun"],
                               stdin=subprocess.PIPE)
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"tools.devrun" not in cmdline.read_bytes():  # empty for a moment while the child execs
        assert time.monotonic() < deadline, "the fake devrun did not start"
    yield process.pid
    process.kill()
    process.wait()


def test_a_live_devrun_is_found(tmp_path: Path, fake_devrun: int) -> None:
    pid_file = tmp_path / "devrun.pid"
    pid_file.write_text(str(fake_devrun))

    assert devrun.running_devrun(pid_file) == fake_devrun
    assert pid_file.exists()


@pytest.mark.parametrize("content", ["not a pid", str(os.getpid()), "999999999"],
                         ids=["garbage", "pid-of-another-program", "dead-pid"])
def test_a_stale_pid_file_is_removed(tmp_path: Path, content: str) -> None:
    pid_file = tmp_path / "devrun.pid"
    pid_file.write_text(content)

    assert devrun.running_devrun(pid_file) is None
    assert not pid_file.exists()


def test_a_second_make_run_refuses_and_leaves_the_first_ones_pid_file(
        tmp_path: Path, fake_devrun: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "devrun.pid").write_text(str(fake_devrun))
    monkeypatch.setenv("MINIMALL_VAR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["devrun"])
    monkeypatch.setattr(devrun, "platform_env", lambda var: pytest.fail("a second platform was started"))

    assert devrun.main() == 1
    assert (tmp_path / "devrun.pid").read_text() == str(fake_devrun)
    assert "already running" in capsys.readouterr().err
