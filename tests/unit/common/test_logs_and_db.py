"""JSON log lines, phone masking, and the UTC-only datetime column type."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.exc import StatementError

from services.common.db import POSTGRES_TIMEOUTS, UTCDateTime, make_engine, postgres_connect_args
from services.common.logs import JsonFormatter, mask_phone


@pytest.fixture
def log_output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose records go, formatted by JsonFormatter("order"), to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("order"))
    logger = logging.getLogger("minimall.unit-test.logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers.clear()


def only_line(stream: io.StringIO) -> dict:
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_log_line_is_one_json_object_with_service_level_logger_and_message(log_output) -> None:
    logger, stream = log_output

    logger.warning("order %s paid", 17)

    entry = only_line(stream)
    assert {k: v for k, v in entry.items() if k != "ts"} == {
        "level": "WARNING", "service": "order", "logger": "minimall.unit-test.logs", "msg": "order 17 paid"}


def test_log_line_time_is_utc_iso_with_milliseconds(log_output) -> None:
    logger, stream = log_output

    logger.info("hello")

    ts = only_line(stream)["ts"]
    assert (len(ts), ts.endswith("+00:00"), datetime.fromisoformat(ts).tzinfo) == (29, True, UTC)


def test_log_line_carries_the_current_request_id(log_output, request_id: str) -> None:
    logger, stream = log_output

    logger.info("hello")

    assert only_line(stream)["request_id"] == "req-test-1"


def test_log_line_outside_a_request_has_no_request_id(log_output) -> None:
    logger, stream = log_output

    logger.info("hello")

    assert "request_id" not in only_line(stream)


def test_log_line_carries_extra_fields(log_output) -> None:
    logger, stream = log_output

    logger.info("paid", extra={"order_id": 17, "amount_fen": 1999, "when": datetime(2026, 1, 1, tzinfo=UTC)})

    entry = only_line(stream)
    assert (entry["order_id"], entry["amount_fen"], entry["when"]) == (17, 1999, "2026-01-01 00:00:00+00:00")


def test_log_line_keeps_chinese_text_readable(log_output) -> None:
    logger, stream = log_output

    logger.info("用户8000 已注册")

    assert '"msg": "用户8000 已注册"' in stream.getvalue()


def test_log_line_of_an_exception_includes_the_traceback_in_the_same_line(log_output) -> None:
    logger, stream = log_output

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")

    exc = only_line(stream)["exc"]
    assert exc.startswith("Traceback") and exc.endswith("RuntimeError: boom")


@pytest.mark.parametrize(("phone", "masked"), [
    ("13800138000", "138****8000"),
    ("123456", "****"),
    ("", "****"),
])
def test_mask_phone_shows_only_prefix_and_last_four(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


# UTCDateTime

@pytest.fixture
def column_type() -> UTCDateTime:
    return UTCDateTime()


def test_naive_datetime_is_refused(column_type: UTCDateTime) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        column_type.process_bind_param(datetime(2026, 1, 1, 12, 0), None)


def test_aware_datetime_is_stored_as_utc(column_type: UTCDateTime) -> None:
    beijing = datetime(2026, 1, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))

    stored = column_type.process_bind_param(beijing, None)

    assert (stored, stored.tzinfo) == (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), UTC)


def test_naive_value_from_the_database_comes_back_as_aware_utc(column_type: UTCDateTime) -> None:
    loaded = column_type.process_result_value(datetime(2026, 1, 1, 12, 0), None)

    assert (loaded, loaded.tzinfo) == (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), UTC)


def test_aware_value_from_the_database_comes_back_in_utc(column_type: UTCDateTime) -> None:
    loaded = column_type.process_result_value(datetime(2026, 1, 1, 20, 0, tzinfo=timezone(timedelta(hours=8))), None)

    assert (loaded, loaded.tzinfo) == (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), UTC)


def test_none_passes_through_both_ways(column_type: UTCDateTime) -> None:
    assert (column_type.process_bind_param(None, None), column_type.process_result_value(None, None)) == (None, None)


@pytest.fixture
def in_memory_table():  # type: ignore[no-untyped-def]
    """An in-process SQLite table with one UTCDateTime column."""
    engine = create_engine("sqlite://")
    table = Table("moments", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    table.metadata.create_all(engine)
    yield engine, table
    engine.dispose()


def test_sqlite_gives_back_the_same_aware_instant(in_memory_table) -> None:
    engine, table = in_memory_table
    beijing = datetime(2026, 1, 1, 20, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))

    with engine.begin() as connection:
        connection.execute(insert(table).values(id=1, at=beijing))
        loaded = connection.execute(select(table.c.at)).scalar_one()

    assert (loaded, loaded.tzinfo) == (beijing, UTC)


def test_sqlite_insert_of_a_naive_datetime_fails(in_memory_table) -> None:
    engine, table = in_memory_table

    with engine.begin() as connection, pytest.raises(StatementError, match="naive datetime"):
        connection.execute(insert(table).values(id=1, at=datetime(2026, 1, 1)))


def test_phone_and_id_numbers_in_any_log_text_are_masked() -> None:
    record = logging.LogRecord("sql", logging.ERROR, __file__, 1,
                               "Key (phone)=(13912345678) already exists; id 11010519491231002X; ts 1795712145923",
                               None, None)

    line = json.loads(JsonFormatter("user").format(record))["msg"]

    assert line == "Key (phone)=(139****5678) already exists; id 1101**********002X; ts 1795712145923"



def test_postgres_connections_get_timeouts_unless_the_url_sets_its_own() -> None:
    defaults = postgres_connect_args("postgresql+psycopg://app@db/user")
    chosen = postgres_connect_args("postgresql+psycopg://app@db/user?connect_timeout=3&tcp_user_timeout=5000")

    assert defaults == POSTGRES_TIMEOUTS
    assert defaults["connect_timeout"] == 10 and defaults["tcp_user_timeout"] == 60_000
    assert chosen == {k: v for k, v in POSTGRES_TIMEOUTS.items() if k not in ("connect_timeout", "tcp_user_timeout")}


def test_a_sqlite_autocommit_connection_commits_each_statement_itself(tmp_path) -> None:
    """Every other SQLite transaction begins IMMEDIATE; an autocommit connection (the order service's submit attempt
    record) must not, or its statement is rolled back when the connection goes back to the pool."""
    engine = make_engine(f"sqlite:///{tmp_path / 'auto.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
