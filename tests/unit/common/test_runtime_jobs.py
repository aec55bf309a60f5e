"""services.common.runtime.every: a periodic job that outlives its failures and ends when stopped."""

from __future__ import annotations

import threading

from services.common.runtime import every


def test_a_periodic_job_runs_each_interval_survives_a_failure_and_stops() -> None:
    stop, calls = threading.Event(), []

    def action() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the first run fails")
        if len(calls) == 3:
            stop.set()

    thread = threading.Thread(target=every(0.001, "test job", action), args=(stop,))
    thread.start()
    thread.join(timeout=10)

    assert (thread.is_alive(), calls) == (False, [0, 1, 2])
