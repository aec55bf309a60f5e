"""gunicorn's settings of the gateway, read as gunicorn reads them (a Python file of names)."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parents[3] / "gateway" / "gunicorn.conf.py"


def test_a_worker_freezes_what_it_built_so_collections_skip_it() -> None:
    settings = runpy.run_path(str(CONF))
    garbage_before = [object() for _ in range(1000)]  # stands for the imports and the app a worker builds
    frozen_before = gc.get_freeze_count()
    try:
        settings["post_worker_init"](object())
        assert gc.get_freeze_count() >= frozen_before + len(garbage_before)
    finally:
        gc.unfreeze()
