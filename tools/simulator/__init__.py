"""Dev simulator of the shop's third parties (WeChat, WeChat Pay, Aliyun SMS, FaceID): `python -m tools.simulator`."""

from tools.simulator.config import DEFAULT_PORT, SimulatorConfig
from tools.simulator.server import Simulator, dev_env, start_simulator

__all__ = ["DEFAULT_PORT", "Simulator", "SimulatorConfig", "dev_env", "start_simulator"]
