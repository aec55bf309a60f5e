"""Bookkeeping pruning on PostgreSQL and SQLite: exactly the rows past their retention go, batch by batch, and two
pruners at once neither count a row twice nor wait on each other."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, inspect, select, text

from services.common.config import DatabaseTimeouts, PruneSettings
from services.common.db import make_engine, utcnow
from services.common.idempotency import idempotency_keys
from services.common.metrics import ROWS_PRUNED
from services.common.outbox import outbox, processed_events
from services.common.pruning import PRUNING_INDEXES, kept_with_keys, prune, prune_once_across_replicas
from services.member import db as member_db
from services.order.db import submit_attempts
from services.product import db as product_db
from services.user.db import OWN_ROWS, account_attempts, refresh_tokens, sms_codes, users
from tests.fixtures.postgres import start_thread

pytestmark = pytest.mark.integration

SETTINGS = PruneSettings(outbox_days=14, processed_events_days=30, idempotency_key_days=7)
NOW = utcnow()


@pytest.fixture
def engine(each_service_engine: Callable[[str], Engine]) -> Engine:
    return each_service_engine("order")


@pytest.fixture
def postgres(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("order")


def days_ago(days: float):  # type: ignore[no-untyped-def]
    return NOW - timedelta(days=days)


def add_outbox(engine: Engine, *, created_days: float, published_days: float | None, count: int = 1) -> None:
    with engine.begin() as conn:
        conn.execute(outbox.insert(), [{
            "event_id": str(uuid.uuid4()), "event_type": "order-paid", "aggregate_id": "o1", "envelope": b"x",
            "created_at": days_ago(created_days),
            "published_at": None if published_days is None else days_ago(published_days)} for _ in range(count)])


def add_processed(engine: Engine, *, days: float, count: int = 1) -> None:
    with engine.begin() as conn:
        conn.execute(processed_events.insert(), [{
            "consumer": "member", "event_id": str(uuid.uuid4()), "event_type": "order-paid",
            "processed_at": days_ago(days)} for _ in range(count)])


def add_key(engine: Engine, scope: str, *, days: float) -> None:
    with engine.begin() as conn:
        conn.execute(idempotency_keys.insert().values(scope=scope, key=str(uuid.uuid4()), request_hash="h",
                                                      response=b"r", created_at=days_ago(days)))


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (outbox, processed_events, idempotency_keys)}


def test_only_rows_past_their_retention_are_deleted_a_batch_at_a_time(engine: Engine) -> None:
    add_outbox(engine, created_days=20, published_days=15, count=5)  # published 15 days ago: gone
    add_outbox(engine, created_days=20, published_days=13)  # published 13 days ago: kept
    add_outbox(engine, created_days=40, published_days=None)  # never published: kept, however old
    add_processed(engine, days=31, count=3)
    add_processed(engine, days=29, count=2)
    add_key(engine, "submit-order:user:1", days=8)  # a client key past its replay window: gone
    add_key(engine, "withdrawal:user:1", days=8)
    add_key(engine, "submit-order:user:1", days=6)  # within its window: kept
    add_key(engine, "balance-payment", days=400)  # a once-for-ever guard: kept
    add_key(engine, "order-paid", days=400)
    add_key(engine, "plan:user:1", days=400)  # a plan purchase's ledger posting carries its key for ever: kept
    before = ROWS_PRUNED.labels("order", "outbox")._value.get()

    pruned = prune(engine, "order", SETTINGS, now=NOW, batch=2)

    assert pruned == {"outbox": 5, "processed_events": 3, "idempotency_keys": 2}
    assert counts(engine) == {"outbox": 2, "processed_events": 2, "idempotency_keys": 4}
    assert ROWS_PRUNED.labels("order", "outbox")._value.get() - before == 5


def test_a_second_round_finds_nothing_more(engine: Engine) -> None:
    add_processed(engine, days=31, count=4)
    prune(engine, "order", SETTINGS, now=NOW, batch=2)

    assert prune(engine, "order", SETTINGS, now=NOW, batch=2) == {
        "outbox": 0, "processed_events": 0, "idempotency_keys": 0}


def test_a_replicas_round_prunes_every_table(engine: Engine) -> None:
    add_outbox(engine, created_days=20, published_days=15, count=2)
    add_processed(engine, days=31, count=3)
    add_key(engine, "recharge:user:9", days=8)

    assert prune_once_across_replicas(engine, "order", SETTINGS, now=NOW) == 6
    assert counts(engine) == {"outbox": 0, "processed_events": 0, "idempotency_keys": 0}


class Stepping:
    """A monotonic clock one second later at each reading: one reading before each batch, so a batch takes a second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_a_round_stops_once_its_budget_is_spent_and_the_next_round_goes_on(postgres: Engine) -> None:
    add_processed(postgres, days=31, count=700)
    add_processed(postgres, days=1, count=10)
    settings = dataclasses.replace(SETTINGS, round_seconds=5)
    clock = Stepping()
    rounds, left = [], []

    for _ in range(3):
        rounds.append(sum(prune(postgres, "order", settings, now=NOW, batch=100, clock=clock).values()))
        left.append(counts(postgres)["processed_events"])

    # started at 1, until 6: outbox's one batch reads the clock at 2, processed_events' batches at 3, 4 and 5, and the
    # reading at 6 stops the round
    assert (rounds, left) == ([300, 300, 100], [410, 110, 10])


def test_each_table_gets_a_batch_whatever_the_budget(postgres: Engine) -> None:
    add_outbox(postgres, created_days=30, published_days=20, count=250)
    add_processed(postgres, days=31, count=250)
    add_key(postgres, "submit-order:user:1", days=8)
    settings = dataclasses.replace(SETTINGS, round_seconds=0)

    pruned = prune(postgres, "order", settings, now=NOW, batch=100, clock=Stepping())

    assert pruned == {"outbox": 100, "processed_events": 100, "idempotency_keys": 1}
    assert counts(postgres) == {"outbox": 150, "processed_events": 150, "idempotency_keys": 0}


def test_a_replicas_round_is_bounded_too(postgres: Engine) -> None:
    add_outbox(postgres, created_days=30, published_days=20, count=500)
    settings = dataclasses.replace(SETTINGS, round_seconds=3)

    first = prune_once_across_replicas(postgres, "order", settings, now=NOW, batch=100, clock=Stepping())
    second = prune_once_across_replicas(postgres, "order", settings, now=NOW, batch=100, clock=Stepping())

    assert (first, second, counts(postgres)["outbox"]) == (200, 200, 100)


def test_two_pruners_at_once_delete_every_old_row_once_between_them(postgres: Engine) -> None:
    add_processed(postgres, days=31, count=3000)
    add_processed(postgres, days=1, count=10)
    results: dict[str, object] = {}

    threads = [start_thread(results, name, lambda: prune(postgres, "order", SETTINGS, now=NOW, batch=100))
               for name in ("first", "second")]
    for thread in threads:
        thread.join(timeout=60)

    assert sum(result["processed_events"] for result in results.values()) == 3000  # type: ignore[index]
    assert counts(postgres)["processed_events"] == 10


def test_two_replicas_rounds_at_once_prune_once(postgres: Engine) -> None:
    add_outbox(postgres, created_days=30, published_days=20, count=1500)
    results: dict[str, object] = {}

    threads = [start_thread(results, name, lambda: prune_once_across_replicas(postgres, "order", SETTINGS, now=NOW))
               for name in ("first", "second")]
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results.values()) == [0, 1500]  # type: ignore[type-var]
    assert counts(postgres)["outbox"] == 0


@pytest.mark.parametrize("service", ["user", "product", "order", "member", "analytics"])
def test_every_service_has_the_indexes_the_age_predicates_read(
        service: str, service_engine: Callable[[str], Engine]) -> None:
    inspector = inspect(service_engine(service))

    found = {(index["name"], table) for table in ("outbox", "processed_events", "idempotency_keys")
             for index in inspector.get_indexes(table)}

    assert {(index.name, index.table.name) for index in PRUNING_INDEXES} <= found


def test_the_admin_create_keys_are_client_keys_pruned_after_their_replay_window(engine: Engine) -> None:
    add_key(engine, "product-create:staff:7", days=8)
    add_key(engine, "coupon-template-create:staff:900", days=8)
    add_key(engine, "category-create:staff:7", days=8)
    add_key(engine, "brand-create:staff:7", days=8)
    add_key(engine, "stock-adjust:staff:7", days=8)
    add_key(engine, "product-create:staff:7", days=6)  # within its window: kept

    assert prune(engine, "order", SETTINGS, now=NOW)["idempotency_keys"] == 5
    assert counts(engine)["idempotency_keys"] == 1


def test_the_order_service_s_submit_attempts_go_with_their_keys_after_the_replay_window(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(submit_attempts.insert(), [
            {"user_id": 1, "idempotency_key": key, "order_no": f"no-{key}", "created_at": days_ago(days)}
            for key, days in (("old-1", 8), ("old-2", 7.5), ("new", 6))])

    pruned = prune(engine, "order", SETTINGS, own={submit_attempts: kept_with_keys(submit_attempts)}, now=NOW, batch=1)

    assert pruned["submit_attempts"] == 2
    with engine.connect() as conn:
        assert conn.execute(select(submit_attempts.c.idempotency_key)).scalars().all() == ["new"]


def test_the_user_service_prunes_ended_sessions_old_sms_codes_and_attempts(
        each_service_engine: Callable[[str], Engine]) -> None:
    engine = each_service_engine("user")
    with engine.begin() as conn:
        user_id = conn.execute(users.insert().values(phone="13800000001", created_at=NOW)).inserted_primary_key[0]

        def token(family: str, expired_days: float) -> dict[str, object]:
            return {"user_id": user_id, "family_id": family, "token_hash": uuid.uuid4().hex, "roles": "",
                    "created_at": days_ago(expired_days + 30), "expires_at": days_ago(expired_days)}

        conn.execute(refresh_tokens.insert(), [
            token("ended", 9), token("ended", 8),  # every token of the session expired over 7 days ago: gone
            token("live", 40), token("live", -20),  # a spent token of a live session: kept, reuse must find it
            token("lately", 9), token("lately", 6),  # the session's last token expired 6 days ago: kept
        ])
        conn.execute(sms_codes.insert(), [
            {"phone": "13800000001", "purpose": "login", "code_hash": "h", "created_at": days_ago(days),
             "expires_at": days_ago(days) + timedelta(minutes=5), "attempts": 0} for days in (3, 2.5, 1.5)])
        conn.execute(account_attempts.insert(), [
            {"user_id": user_id, "kind": "identity-check", "attempted_at": days_ago(days)} for days in (3, 1.5)])

    pruned = prune(engine, "user", SETTINGS, own=OWN_ROWS, now=NOW, batch=1)

    assert {name: pruned[name] for name in ("refresh_tokens", "sms_codes", "account_attempts")} == {
        "refresh_tokens": 2, "sms_codes": 2, "account_attempts": 1}
    with engine.connect() as conn:
        left = conn.execute(select(refresh_tokens.c.family_id, func.count()).group_by(refresh_tokens.c.family_id)
                            .order_by(refresh_tokens.c.family_id)).all()
        assert [tuple(row) for row in left] == [("lately", 2), ("live", 2)]
        assert conn.execute(select(func.count()).select_from(sms_codes)).scalar_one() == 1


def test_the_product_service_prunes_the_marks_of_orders_released_before_they_reserved_after_a_day(
        each_service_engine: Callable[[str], Engine]) -> None:
    engine = each_service_engine("product")
    released = product_db.released_orders
    with engine.begin() as conn:
        conn.execute(released.insert(), [{"order_no": f"R{days}", "released_at": days_ago(days)} for days in (2, 1.5, 0.5)])

    pruned = prune(engine, "product", SETTINGS, own=product_db.OWN_ROWS, now=NOW, batch=1)

    with engine.connect() as conn:
        assert (pruned["released_orders"], conn.execute(select(released.c.order_no)).scalars().all()) == (2, ["R0.5"])


def test_the_member_service_prunes_only_the_marks_of_orders_released_before_they_held_anything(
        each_service_engine: Callable[[str], Engine]) -> None:
    engine = each_service_engine("member")
    holds, expired = member_db.points_holds, member_db.expired_coupon_locks
    with engine.begin() as conn:
        conn.execute(holds.insert(), [
            {"order_no": no, "user_id": 1, "points": held, "status": status, "created_at": days_ago(days)}
            for no, held, status, days in (("MARK-OLD", 0, "released", 2), ("MARK-NEW", 0, "released", 0.5),
                                           ("REAL-RELEASED", 300, "released", 2), ("REAL-USED", 300, "used", 2))])
        conn.execute(expired.insert(), [
            {"order_no": no, "coupon_id": coupon_id, "user_id": 1, "discount_fen": 0, "expired_at": days_ago(days)}
            for no, coupon_id, days in (("MARK-OLD", 0, 2), ("MARK-NEW", 0, 0.5), ("SWEPT", 7, 2))])

    pruned = prune(engine, "member", SETTINGS, own=member_db.OWN_ROWS, now=NOW)

    with engine.connect() as conn:
        left = (sorted(conn.execute(select(holds.c.order_no)).scalars()),
                sorted(conn.execute(select(expired.c.order_no)).scalars()))
    assert ((pruned["points_holds"], pruned["expired_coupon_locks"]), left) == (
        (1, 1), (["MARK-NEW", "REAL-RELEASED", "REAL-USED"], ["MARK-NEW", "SWEPT"]))


@pytest.fixture
def slow_key_deletes(service_engine: Callable[[str], Engine], migrated_database: Callable[[str], str]) -> Iterator[
        Engine]:
    """An order database engine whose service statement timeout is 200 ms, where each DELETE of idempotency_keys
    (even one that deletes nothing, as a scan of never-pruned guards) first sleeps 500 ms and records the
    statement_timeout it runs under in `seen_timeouts`."""
    service_engine("order")  # a clean, migrated database
    engine = make_engine(migrated_database("order"),
                         DatabaseTimeouts(statement_seconds=0.2, lock_seconds=0.1, idle_in_transaction_seconds=10.0))
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("CREATE TABLE seen_timeouts (statement_timeout text NOT NULL)"))
        conn.execute(text("CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "INSERT INTO seen_timeouts VALUES (current_setting('statement_timeout')); "
                          "PERFORM pg_sleep(0.5); RETURN NULL; END $$"))
        conn.execute(text("CREATE TRIGGER slow_delete BEFORE DELETE ON idempotency_keys "
                          "FOR EACH STATEMENT EXECUTE FUNCTION slow_delete()"))
    yield engine
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("DROP TRIGGER slow_delete ON idempotency_keys"))
        conn.execute(text("DROP FUNCTION slow_delete()"))
        conn.execute(text("DROP TABLE seen_timeouts"))
    engine.dispose()


def test_a_prune_batch_runs_under_the_rounds_budget_not_the_services_statement_timeout(
        slow_key_deletes: Engine) -> None:
    add_key(slow_key_deletes, "order-paid", days=400)  # a guard kept for ever: scanned, never deleted
    add_key(slow_key_deletes, "submit-order:user:1", days=8)
    settings = dataclasses.replace(SETTINGS, round_seconds=120)

    pruned = prune(slow_key_deletes, "order", settings, now=NOW, batch=100, clock=Stepping())

    with slow_key_deletes.connect() as conn:
        seen = conn.execute(text("SELECT statement_timeout FROM seen_timeouts")).scalars().all()
        after = conn.execute(text("SHOW statement_timeout")).scalar_one()  # the batch's setting ended with it
    # the round starts at 1, until 121; the keys' batch reads the clock at 4 (after outbox's and processed_events')
    assert (pruned["idempotency_keys"], seen, after) == (1, ["117s"], "200ms")


def test_a_batch_past_the_budget_still_runs_under_the_longest_service_statement_timeout(
        slow_key_deletes: Engine) -> None:
    add_key(slow_key_deletes, "submit-order:user:1", days=8)
    settings = dataclasses.replace(SETTINGS, round_seconds=0)

    pruned = prune(slow_key_deletes, "order", settings, now=NOW, batch=100, clock=Stepping())

    with slow_key_deletes.connect() as conn:
        seen = conn.execute(text("SELECT statement_timeout FROM seen_timeouts")).scalars().all()
    assert (pruned["idempotency_keys"], seen) == (1, ["1min"])
