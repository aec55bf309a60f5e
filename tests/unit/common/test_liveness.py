"""/livez of relay and consumer processes: 503 once a loop stops coming round, 200 while it iterates, idle or backing
off. Time is a fake clock the loops' own waits and calls move."""

from __future__ import annotations

import functools
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine

from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.liveness import LIVENESS_PATH, Liveness
from services.common.metrics import serve_metrics
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceApp, run_roles
from tests.fixtures.kafka import ScriptedConsumer, batch
from tests.unit.common.test_consumer import SETTINGS, registration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def analytics_db(sqlite_service_engine: Callable[[str], Engine]) -> Engine:
    return sqlite_service_engine("analytics")


@pytest.fixture
def livez(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Liveness, Callable[[], int]]]:
    """A Liveness served on a real metrics port, and a GET of its /livez returning the HTTP status."""
    liveness = Liveness()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve_metrics(port, {LIVENESS_PATH: liveness.answer})
    assert server is not None

    def get() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{LIVENESS_PATH}", timeout=5) as answer:  # noqa: S310
                return answer.status
        except urllib.error.HTTPError as refused:
            return refused.code
    yield liveness, get
    server.shutdown()
    server.server_close()


def analytics_consumer(engine: Engine, scripted: ScriptedConsumer, clock: FakeClock,
                       fail: bool = False) -> EventConsumer[SqlAnalyticsUnitOfWork]:
    def handler(uow: SqlAnalyticsUnitOfWork, event: UserRegistered, envelope: EventEnvelope) -> None:
        if fail:
            raise RuntimeError("database hiccup")
    return EventConsumer("analytics", functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"), SETTINGS,
                         {UserRegistered: handler}, consumer_factory=lambda *_: scripted,  # type: ignore[arg-type,return-value]
                         clock=clock)


class Until:
    """run()'s stop event: set once `done()`; each wait moves the clock by what it waits."""

    def __init__(self, clock: FakeClock, done: Callable[[], bool], on_wait: Callable[[], None] = lambda: None) -> None:
        self.clock, self.done, self.on_wait = clock, done, on_wait
        self.waited: list[float] = []

    def is_set(self) -> bool:
        return self.done()

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.clock.advance(seconds)
        self.on_wait()
        return self.is_set()


def test_a_consumer_hung_in_a_poll_for_longer_than_its_bound_makes_livez_answer_503_until_it_comes_round(
        analytics_db: Engine, clock: FakeClock, livez: tuple[Liveness, Callable[[], int]]) -> None:
    liveness, get = livez
    answers: list[int] = []

    class Hanging(ScriptedConsumer):
        def poll(self, timeout_ms: int) -> dict:  # type: ignore[type-arg]
            answers.append(get())  # before the hang
            clock.advance(consumer.liveness_bound_seconds() + 0.1)  # the broker never answers ...
            answers.append(get())  # ... while the call still hangs
            return {}
    consumer = analytics_consumer(analytics_db, Hanging([]), clock)
    liveness.register([consumer.heartbeat])

    consumer.run(Until(clock, lambda: len(answers) == 2))  # type: ignore[arg-type]

    assert (answers, get()) == ([200, 503], 200)  # the iteration completed: it beat again


def test_a_consumer_polling_idle_for_much_longer_than_its_bound_stays_alive(
        analytics_db: Engine, clock: FakeClock, livez: tuple[Liveness, Callable[[], int]]) -> None:
    liveness, get = livez
    answers: list[int] = []
    consumer = analytics_consumer(analytics_db, ScriptedConsumer([]), clock)
    bound = consumer.liveness_bound_seconds()
    start = clock.now

    class Idle(ScriptedConsumer):
        def poll(self, timeout_ms: int) -> dict:  # type: ignore[type-arg]
            clock.advance(timeout_ms / 1000)
            answers.append(get())
            return {}
    consumer.consumer_factory = lambda *_: Idle([])  # type: ignore[assignment,return-value]
    liveness.register([consumer.heartbeat])

    consumer.run(Until(clock, lambda: clock.now - start > 3 * bound))  # type: ignore[arg-type]

    assert (set(answers), len(answers)) == ({200}, int(3 * bound / 0.5) + 1)


def test_a_consumer_backing_off_after_failures_stays_alive_as_long_as_it_iterates(
        analytics_db: Engine, clock: FakeClock, livez: tuple[Liveness, Callable[[], int]]) -> None:
    liveness, get = livez
    stuck = registration(1, 0, 10)

    class AlwaysTheFailingRecord(ScriptedConsumer):
        def poll(self, timeout_ms: int) -> dict:  # type: ignore[type-arg]
            return batch(stuck)
    consumer = analytics_consumer(analytics_db, AlwaysTheFailingRecord([]), clock, fail=True)
    liveness.register([consumer.heartbeat])
    bound = consumer.liveness_bound_seconds()
    start = clock.now
    answers: list[int] = []
    stop = Until(clock, lambda: clock.now - start > 2 * bound, on_wait=lambda: answers.append(get()))

    consumer.run(stop)  # type: ignore[arg-type]

    assert stop.waited[:4] == [0.1, 0.2, 0.4, consumer.max_backoff_seconds]  # backing off all along
    assert set(answers) == {200} and len(answers) == len(stop.waited)


def test_a_relay_failing_every_pass_stays_alive_and_one_hung_in_a_send_does_not(
        analytics_db: Engine, clock: FakeClock) -> None:
    liveness = Liveness()
    answers: list[int] = []

    class Relay(OutboxRelay):
        hang = False

        def publish_pending(self) -> int:
            if self.hang:
                clock.advance(self.liveness_bound_seconds() + 0.1)
                answers.append(liveness.answer()[0])
                return 0
            raise ConnectionError("broker down")
    relay = Relay("analytics", analytics_db, SETTINGS, clock=clock)
    liveness.register([relay.heartbeat])
    start = clock.now

    relay.run(Until(clock, lambda: clock.now - start > 2 * relay.liveness_bound_seconds(),  # type: ignore[arg-type]
                    on_wait=lambda: answers.append(liveness.answer()[0])))
    failing = list(answers)
    relay.hang, answers[:] = True, []
    relay.run(Until(clock, lambda: bool(answers)))  # type: ignore[arg-type]

    assert (set(failing), answers) == ({200}, [503])
    status, body = liveness.answer()
    assert status == 200 and body == "ok\n"


def test_livez_names_each_late_loop_with_its_age_and_bound(clock: FakeClock) -> None:
    consumer = EventConsumer("member-points", lambda: None, SETTINGS, {}, clock=clock)  # type: ignore[arg-type,return-value]
    liveness = Liveness()
    liveness.register([consumer.heartbeat])
    clock.advance(40)

    assert liveness.answer() == (503, "consumer-member-points: last beat 40.0 s ago, bound 34.0 s\n")


def test_the_bounds_follow_the_loops_own_timeouts() -> None:
    defaults = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=300_000, topic_prefix="",
                             request_timeout_ms=30_000)
    relay = OutboxRelay("user", None, defaults)  # type: ignore[arg-type]
    consumer = EventConsumer("user", lambda: None, defaults, {})  # type: ignore[arg-type,return-value]

    # relay: 10 s back-off + 30 s metadata + 60.005 s delivery + 1 s settle + 1 s close + 70 s database + 30 s margin
    # consumer: 0.5 s poll + 300 s max poll interval + 30 s commit + 10 s back-off + 30 s margin
    assert (relay.liveness_bound_seconds(), consumer.liveness_bound_seconds()) == (pytest.approx(202.005), 370.5)


def test_run_roles_puts_the_consumers_heartbeats_on_livez_while_they_run(clock: FakeClock) -> None:
    liveness = Liveness()
    seen: list[tuple[int, str]] = []

    class Consumer(EventConsumer):
        def run(self, stop: threading.Event) -> None:
            clock.advance(self.liveness_bound_seconds() + 1)  # hung
            seen.append(liveness.answer())
    consumer = Consumer("member-points", lambda: None, SETTINGS, {}, clock=clock)  # type: ignore[arg-type,return-value]
    settings = SimpleNamespace(service="member", kafka=SETTINGS)
    stop = threading.Event()
    stop.set()

    run_roles(ServiceApp(settings=settings, engine=None, registrations=[], consumers=[consumer]),  # type: ignore[arg-type]
              ("consume",), stop, liveness)

    assert seen == [(503, "consumer-member-points: last beat 35.0 s ago, bound 34.0 s\n")]
    assert liveness.answer() == (200, "ok\n")  # stopped: no longer watched
