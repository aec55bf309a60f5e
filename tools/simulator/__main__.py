"""python -m tools.simulator [--host 127.0.0.1] [--port 8099]: serve until SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from tools.simulator.config import DEFAULT_PORT, SimulatorConfig
from tools.simulator.server import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    simulator = Simulator(SimulatorConfig.from_env(), args.host, args.port).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"simulator listening on {simulator.base_url} (WeChat, WeChat Pay, Alipay, bank card, Aliyun SMS, FaceID; hooks under /sim/)",
          flush=True)
    stop.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
