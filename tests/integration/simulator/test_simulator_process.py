"""`python -m tools.simulator` as make run starts it: listens on --port, answers, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from services.common.devbroker import free_port
from tools.simulator import dev_env
from tools.simulator.client import SimulatorClient

ROOT = Path(__file__).resolve().parents[3]


def test_the_simulator_process_serves_on_its_port_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tools.simulator", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = SimulatorClient(f"http://127.0.0.1:{port}", timeout_seconds=1)
    try:
        deadline = time.monotonic() + 20
        while not client.healthy():
            assert process.poll() is None and time.monotonic() < deadline, "the simulator did not come up"
            time.sleep(0.1)
        code = client.wechat_login_code("o-process-test")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)

    assert (len(code), process.returncode) == (32, 0)
    assert f"simulator listening on http://127.0.0.1:{port}" in output


def test_dev_env_points_every_adapter_at_the_simulator() -> None:
    env = dev_env("http://127.0.0.1:8099")

    assert (env["WECHAT_API_BASE"], env["ALIYUN_SMS_ENDPOINT"], env["REALNAME_ENDPOINT"]) == (
        "http://127.0.0.1:8099", "http://127.0.0.1:8099/dysmsapi/", "http://127.0.0.1:8099/faceid/")
