"""Idempotency keys on PostgreSQL (and SQLite): replay, reuse with another body, rollback, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from mall.events.v1.user_events_pb2 import UserRegistered
from sqlalchemy import Engine, func, inspect, select, text

from services.common.config import SERVICES
from services.common.errors import Conflict, ErrorKind, InvalidInput
from services.common.idempotency import idempotency_keys
from services.common.outbox import outbox
from services.common.uow import SqlUnitOfWork

pytestmark = pytest.mark.integration

SCOPE = "submit-order:user:42"


@pytest.fixture
def engine(each_service_engine: Callable[[str], Engine]) -> Engine:
    return each_service_engine("order")


@pytest.fixture
def postgres(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("order")


class Executions:
    """An `execute` for run_once that counts its runs (over all instances) and publishes one event per run."""

    runs = 0
    lock = threading.Lock()

    def __init__(self, uow: SqlUnitOfWork, response: bytes = b"order 1001",
                 before: Callable[[], None] = lambda: None) -> None:
        self.uow, self.response, self.before = uow, response, before

    def __call__(self) -> bytes:
        self.before()
        with Executions.lock:
            Executions.runs += 1
        self.uow.publish(UserRegistered(user_id=1001), aggregate_id="1001")
        return self.response


@pytest.fixture(autouse=True)
def no_runs_yet() -> None:
    Executions.runs = 0


def submit(engine: Engine, key: str, request: bytes, *, response: bytes = b"order 1001", commit: bool = True,
           before: Callable[[], None] = lambda: None) -> bytes:
    with SqlUnitOfWork(engine, "order") as uow:
        answer = uow.run_once(scope=SCOPE, key=key, request=request,
                              execute=Executions(uow, response, before))
        if commit:
            uow.commit()
    return answer


def rows(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_retry_with_the_same_key_and_body_gets_the_first_response_without_running_again(engine: Engine) -> None:
    first = submit(engine, "key-1", b'{"sku": 1}')
    again = submit(engine, "key-1", b'{"sku": 1}', response=b"a second order")

    assert (first, again, Executions.runs) == (b"order 1001", b"order 1001", 1)
    assert (rows(engine, idempotency_keys), rows(engine, outbox)) == (1, 1)


def test_the_same_key_with_another_body_is_a_conflict_and_runs_nothing(engine: Engine) -> None:
    submit(engine, "key-1", b'{"sku": 1}')

    with pytest.raises(Conflict) as raised:
        submit(engine, "key-1", b'{"sku": 2}')

    assert (raised.value.code, raised.value.kind, raised.value.details) == (
        "IDEMPOTENCY_KEY_REUSED", ErrorKind.CONFLICT, {"idempotency_key": "reused"})
    assert (Executions.runs, rows(engine, outbox)) == (1, 1)


def test_the_same_key_in_another_scope_or_another_key_runs_on_its_own(engine: Engine) -> None:
    submit(engine, "key-1", b"{}")
    submit(engine, "key-2", b"{}")
    with SqlUnitOfWork(engine, "order") as uow:
        uow.run_once(scope="recharge:user:42", key="key-1", request=b"{}", execute=Executions(uow))
        uow.commit()

    assert (Executions.runs, rows(engine, idempotency_keys)) == (3, 3)


def test_a_request_whose_transaction_rolls_back_leaves_the_key_free(engine: Engine) -> None:
    submit(engine, "key-1", b"{}", commit=False)

    assert submit(engine, "key-1", b"{}", response=b"order 1002") == b"order 1002"
    assert (Executions.runs, rows(engine, idempotency_keys), rows(engine, outbox)) == (2, 1, 1)


@pytest.mark.parametrize("key", ["", "k" * 129, "clé", "key\n1"], ids=["empty", "too-long", "non-ascii", "newline"])
def test_a_malformed_key_is_refused_before_anything_runs(engine: Engine, key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        submit(engine, key, b"{}")

    assert (raised.value.code, Executions.runs, rows(engine, idempotency_keys)) == ("IDEMPOTENCY_KEY_INVALID", 0, 0)


def waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'")).scalar_one()


def test_concurrent_requests_with_one_key_run_exactly_once_and_all_get_its_response(postgres: Engine) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    answers: list[bytes] = []
    failures: list[BaseException] = []

    def until_the_others_wait() -> None:
        # Hold the key until every other request is blocked on it, so they truly race.
        deadline = time.monotonic() + 30
        while waiting_on_locks(postgres) < threads - 1:
            assert time.monotonic() < deadline, "the other requests never waited on the key"
            time.sleep(0.02)

    def request() -> None:
        barrier.wait()
        try:
            answers.append(submit(postgres, "key-1", b'{"sku": 1}', before=until_the_others_wait))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    started = [threading.Thread(target=request) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()

    assert failures == []
    assert (Executions.runs, answers) == (1, [b"order 1001"] * threads)
    assert (rows(postgres, idempotency_keys), rows(postgres, outbox)) == (1, 1)


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_database_has_the_idempotency_table(
        sqlite_service_engine: Callable[[str], Engine], service: str) -> None:
    columns = {c["name"] for c in inspect(sqlite_service_engine(service)).get_columns("idempotency_keys")}

    assert columns == {"scope", "key", "request_hash", "response", "created_at"}


def test_replay_reads_a_committed_first_response_and_nothing_else(engine: Engine) -> None:
    """The peek a use case makes before checking a retried request: None while the key is new, the first response
    once committed, and the same Conflict as run_once for another request under the key."""
    def replay(request: bytes) -> bytes | None:
        with SqlUnitOfWork(engine, "order") as uow:
            return uow.replay(scope=SCOPE, key="k-peek", request=request)

    before = replay(b"cart 7")
    submit(engine, "k-peek", b"cart 7")

    with pytest.raises(Conflict) as reused:
        replay(b"cart 8")
    assert (before, replay(b"cart 7"), reused.value.code, Executions.runs) == (
        None, b"order 1001", "IDEMPOTENCY_KEY_REUSED", 1)
