"""/livez of server processes: 503 once a serve-role job stops coming round or the process's own gRPC server stops
answering its health check, 200 while jobs go round, failing or not. Time is a fake clock the jobs' waits move."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from sqlalchemy import Engine

from services.analytics import reports
from services.analytics.reports import ReportRunner
from services.common.config import Env, PruneSettings, ServiceSettings
from services.common.discovery import Discovery
from services.common.liveness import GrpcSelfCheck, Heartbeat, Liveness, loopback_target
from services.common.pruning import round_worst_seconds
from services.common.runtime import JOB_ROUND_SECONDS, ServiceApp, every, round_budget, run_roles
from services.common.runtime_config import WAIT, RuntimeConfig
from services.order import __main__ as order_process
from tests.fixtures.keys import JwtKeys
from tests.unit.common.test_liveness import FakeClock, Until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_job_hung_in_its_round_makes_livez_answer_503_naming_it_once_past_its_bound(
        clock: FakeClock, jwt_keys: JwtKeys, sqlite_service_engine: Callable[[str], Engine]) -> None:
    liveness, stop, seen, hung = Liveness(), threading.Event(), [], threading.Event()

    def hang() -> None:
        clock.advance(job.bound_seconds - 1)
        seen.append(liveness.answer())
        clock.advance(2)
        seen.append(liveness.answer())
        clock.advance(3900 - job.bound_seconds)  # past the pruning job's bound as well
        seen.append(liveness.answer())
        hung.set()
        stop.wait()  # hung on a lock until the process stops
    job = every(0, "hanging round", hang)
    settings = dataclasses.replace(
        ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)}),
        grpc_listen="127.0.0.1:0", shutdown_delay_seconds=0.0, shutdown_grace_seconds=0.0)
    app = ServiceApp(settings=settings, engine=sqlite_service_engine("analytics"), registrations=[],
                     jobs={"hanging": job})
    process = threading.Thread(target=run_roles, args=(app, ("serve",), stop, liveness), kwargs={"clock": clock})
    process.start()
    try:
        assert hung.wait(timeout=30)
    finally:
        stop.set()
        process.join(timeout=30)

    # every(0, ...): no wait, the round JOB_ROUND_SECONDS, the margin 30 s; pruning: 3600 s + its round (60 s budget
    # + 3 batches of 70 s) + 30 s
    assert (job.bound_seconds, round_worst_seconds(settings.pruning)) == (JOB_ROUND_SECONDS + 30, 270)
    assert seen == [(200, "ok\n"),
                    (503, "job-hanging: last beat 631.0 s ago, bound 630.0 s\n"),
                    (503, "job-hanging: last beat 3901.0 s ago, bound 630.0 s\n"
                          "job-prune-bookkeeping: last beat 3901.0 s ago, bound 3900.0 s\n")]
    assert liveness.answer() == (200, "ok\n")  # stopped: no longer watched


def test_run_roles_watches_its_own_grpc_server_while_it_serves_and_no_longer_once_it_drains(
        jwt_keys: JwtKeys, sqlite_service_engine: Callable[[str], Engine]) -> None:
    watched: list[Callable[[], str | None]] = []
    serving, stop = threading.Event(), threading.Event()

    class Watched(Liveness):
        def watch(self, name: str, check: Callable[[], str | None]) -> None:
            super().watch(name, check)
            watched.append(check)
            serving.set()
    liveness = Watched()
    settings = dataclasses.replace(
        ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)}),
        grpc_listen="0.0.0.0:0", shutdown_delay_seconds=0.0, shutdown_grace_seconds=0.0)
    app = ServiceApp(settings=settings, engine=sqlite_service_engine("analytics"), registrations=[])
    process = threading.Thread(target=run_roles, args=(app, ("serve",), stop, liveness))
    process.start()
    try:
        assert serving.wait(timeout=30)
        while_serving = liveness.answer()
    finally:
        stop.set()
        process.join(timeout=30)
    [check] = watched

    assert while_serving == (200, "ok\n")
    assert (check() or "").endswith("failed: UNAVAILABLE")  # the server stopped: what /livez would say ...
    assert liveness.answer() == (200, "ok\n")  # ... had the drain not taken the check off first


def test_a_job_whose_round_keeps_failing_still_beats(clock: FakeClock) -> None:
    liveness, answers = Liveness(), []

    def fail() -> None:
        clock.advance(500)  # a long round, within JOB_ROUND_SECONDS, then the channel refuses
        raise ConnectionError("channel down")
    job = every(60, "failing round", fail)
    heartbeat = Heartbeat("job-failing", job.bound_seconds, clock=clock)
    liveness.register([heartbeat])
    start = clock.now

    job(Until(clock, lambda: clock.now - start > 3 * job.bound_seconds,  # type: ignore[arg-type]
              on_wait=lambda: answers.append(liveness.answer()[0])), heartbeat.beat)

    assert (set(answers), len(answers)) == ({200}, 5)  # 5 waits of 60 s, 4 failed rounds of 500 s between them


def test_an_order_scan_beats_after_each_scan_failed_or_not(clock: FakeClock) -> None:
    scans: list[float] = []

    def step() -> int:
        scans.append(clock.now)
        if len(scans) == 2:
            raise ConnectionError("database gone")
        return 0
    job = order_process.batches("payment timeout", lambda _: step(), 60, round_budget(300, row_calls_seconds=0))
    beats: list[float] = []

    job(Until(clock, lambda: len(scans) == 3), lambda: beats.append(clock.now))  # type: ignore[arg-type]

    # the interval, the scan's budget of 300 s and its last batch (2 database calls of 70 s), the margin
    assert (scans, beats, job.bound_seconds) == ([1000.0, 1060.0, 1120.0], [1000.0, 1060.0, 1120.0], 530.0)


class WedgedServer:
    """A gRPC server with grpc.health.v1 and one worker thread, which `wedge()` holds until the server stops."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Wedge", {
            "Hold": grpc.unary_unary_rpc_method_handler(self._hold)})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def _hold(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.held.set()
        self.release.wait()
        return b""

    def wedge(self) -> None:
        hold = self.channel.unary_unary("/test.Wedge/Hold", request_serializer=None, response_deserializer=None)
        self.holding = hold.future(b"")  # kept: a call whose future is collected is cancelled
        assert self.held.wait(timeout=10)

    def close(self) -> None:
        self.release.set()
        self.channel.close()
        self.server.stop(None).wait()


@pytest.fixture
def server() -> Iterator[WedgedServer]:
    server = WedgedServer()
    yield server
    server.close()


def test_a_wedged_grpc_server_makes_livez_answer_503(server: WedgedServer) -> None:
    liveness = Liveness()
    liveness.watch(GrpcSelfCheck.name, GrpcSelfCheck(f"127.0.0.1:{server.port}", deadline_seconds=0.5))
    serving = liveness.answer()

    server.wedge()  # its only worker held: the health check waits in the queue past its deadline

    assert (serving, liveness.answer()) == (
        (200, "ok\n"), (503, f"grpc-server: health check of 127.0.0.1:{server.port} failed: DEADLINE_EXCEEDED\n"))


def test_a_stopped_grpc_server_makes_livez_answer_503(server: WedgedServer) -> None:
    liveness = Liveness()
    liveness.watch(GrpcSelfCheck.name, GrpcSelfCheck(f"127.0.0.1:{server.port}", deadline_seconds=0.5))
    serving = liveness.answer()

    server.server.stop(None).wait()

    assert (serving, liveness.answer()) == (
        (200, "ok\n"), (503, f"grpc-server: health check of 127.0.0.1:{server.port} failed: UNAVAILABLE\n"))


def test_a_draining_grpc_server_fails_the_check_which_run_roles_takes_off_livez_first() -> None:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.enter_graceful_shutdown()
        problem = GrpcSelfCheck(f"127.0.0.1:{port}")()
    finally:
        server.stop(None).wait()

    assert problem == f"grpc-server: health check of 127.0.0.1:{port} answered NOT_SERVING"


@pytest.mark.parametrize(("listen", "target"), [("0.0.0.0:50051", "127.0.0.1:7"), ("[::]:50051", "127.0.0.1:7"),
                                                 ("10.1.2.3:50051", "10.1.2.3:7"), ("[fd00::1]:0", "[fd00::1]:7")])
def test_the_self_check_reaches_the_server_where_it_listens(listen: str, target: str) -> None:
    assert loopback_target(listen, 7) == target


def test_the_report_runner_beats_after_each_pass_and_as_a_report_writes_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "expire_reports", lambda *args, **kwargs: 0)
    monkeypatch.setattr(reports, "remove_leftover_files", lambda *args, **kwargs: 0)
    beats: list[str] = []

    class Runner(ReportRunner):
        def run_one(self, beat: Callable[[], None] = lambda: None) -> bool:
            """Two reports of a row each, then none."""
            if beats.count("row") < 2:
                beats.append("row")
                beat()  # as _progress does for each row written
                return True
            return False
    runner = Runner(lambda: SimpleNamespace(), tmp_path)  # type: ignore[arg-type,return-value]
    stop = SimpleNamespace(is_set=lambda: "wait" in beats, wait=lambda seconds: beats.append("wait"))
    runner.run(stop, lambda: beats.append("beat"))  # type: ignore[arg-type]

    assert beats == ["row", "beat", "beat", "row", "beat", "beat", "wait", "beat"]  # a row, a report, a pass
    assert runner.job().bound_seconds == 1 + 30 * 60 + 30  # poll, a report silent for stalled_after, the margin


def test_the_live_settings_watch_is_allowed_a_blocking_query_with_the_clients_own_timeout_and_a_back_off() -> None:
    discovery = Discovery("127.0.0.1:8500", Env({}))
    live = RuntimeConfig(discovery, "order", {})

    # what the Consul client lets one blocking query of the watch take before it fails, timed apart by requests: its
    # connect within the client's own timeout, then its answer within the wait, Consul's jitter (wait / 16) and the
    # client's own timeout on top; both count in the bound, with the back-off and the margin
    query = discovery.consul.http.timeout({"index": "7", "wait": WAIT})  # type: ignore[union-attr]
    plain = discovery.consul.http.timeout({})  # type: ignore[union-attr]
    assert (query, plain) == ((30, 30 + 30 / 16 + 30), (30, 30))
    assert live.liveness_bound_seconds() == 30 + (30 + 30 / 16 + 30) + 5 + 30 == 126.875


def test_the_pruning_round_budget_is_a_setting() -> None:
    assert (PruneSettings.from_env(Env({})).round_seconds,
            PruneSettings.from_env(Env({"PRUNE_ROUND_SECONDS": "120"})).round_seconds) == (60, 120)
