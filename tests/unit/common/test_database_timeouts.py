"""DB_STATEMENT_TIMEOUT_SECONDS, DB_LOCK_TIMEOUT_SECONDS, DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS and
DB_REPORT_STATEMENT_TIMEOUT_SECONDS: read at start-up (a bad one a ConfigError naming it), and sent to PostgreSQL with
every connection of a service engine."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, DatabaseTimeouts, Env, ServiceSettings
from services.common.db import POSTGRES_TIMEOUTS, postgres_connect_args
from tests.fixtures.keys import JwtKeys

URL = "postgresql+psycopg://minimall@db.example/order"


def test_the_defaults_end_a_statement_before_the_5_s_grpc_deadline_and_a_lock_wait_before_the_statement() -> None:
    timeouts = DatabaseTimeouts.from_env(Env({}))

    assert timeouts == DatabaseTimeouts(statement_seconds=4.0, lock_seconds=3.0, idle_in_transaction_seconds=60.0,
                                        report_statement_seconds=600.0)


def test_the_timeouts_are_read_from_the_environment() -> None:
    timeouts = DatabaseTimeouts.from_env(Env({
        "DB_STATEMENT_TIMEOUT_SECONDS": "2.5", "DB_LOCK_TIMEOUT_SECONDS": "0.25",
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "30", "DB_REPORT_STATEMENT_TIMEOUT_SECONDS": "900"}))

    assert timeouts == DatabaseTimeouts(statement_seconds=2.5, lock_seconds=0.25, idle_in_transaction_seconds=30.0,
                                        report_statement_seconds=900.0)


@pytest.mark.parametrize(("name", "raw"), [
    ("DB_STATEMENT_TIMEOUT_SECONDS", "0"), ("DB_STATEMENT_TIMEOUT_SECONDS", "61"),
    ("DB_STATEMENT_TIMEOUT_SECONDS", "soon"), ("DB_LOCK_TIMEOUT_SECONDS", "-1"), ("DB_LOCK_TIMEOUT_SECONDS", "0"),
    ("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "0"), ("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "3601"),
    ("DB_REPORT_STATEMENT_TIMEOUT_SECONDS", "0"), ("DB_REPORT_STATEMENT_TIMEOUT_SECONDS", "1801"),
    ("DB_REPORT_STATEMENT_TIMEOUT_SECONDS", "inf")])
def test_a_timeout_out_of_its_range_is_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        DatabaseTimeouts.from_env(Env({name: raw}))


def test_a_lock_timeout_longer_than_the_statement_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="DB_LOCK_TIMEOUT_SECONDS .5. must be at most DB_STATEMENT_TIMEOUT_SECONDS"):
        DatabaseTimeouts.from_env(Env({"DB_STATEMENT_TIMEOUT_SECONDS": "4", "DB_LOCK_TIMEOUT_SECONDS": "5"}))


def test_a_service_process_refuses_to_start_with_a_bad_timeout(jwt_keys: JwtKeys) -> None:
    environ = {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "DB_LOCK_TIMEOUT_SECONDS": "0"}

    with pytest.raises(ConfigError, match="DB_LOCK_TIMEOUT_SECONDS must be more than 0"):
        ServiceSettings.from_env("order", environ)


def test_a_service_process_carries_its_timeouts(jwt_keys: JwtKeys) -> None:
    environ = {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "DB_STATEMENT_TIMEOUT_SECONDS": "3"}

    assert ServiceSettings.from_env("order", environ).database_timeouts.statement_seconds == 3.0


def test_every_connection_asks_postgresql_for_the_timeouts_in_milliseconds() -> None:
    timeouts = DatabaseTimeouts(statement_seconds=0.5, lock_seconds=0.2, idle_in_transaction_seconds=1.5)

    assert postgres_connect_args(URL, timeouts) == {
        **POSTGRES_TIMEOUTS,
        "options": "-c statement_timeout=500 -c lock_timeout=200 -c idle_in_transaction_session_timeout=1500"}


def test_options_the_url_sets_come_after_the_timeouts_so_they_win() -> None:
    args = postgres_connect_args(f"{URL}?options=-c%20statement_timeout%3D9000", DatabaseTimeouts())

    assert args["options"] == ("-c statement_timeout=4000 -c lock_timeout=3000 "
                               "-c idle_in_transaction_session_timeout=60000 -c statement_timeout=9000")


def test_the_reports_engine_has_the_report_statement_timeout_and_the_rest_alike() -> None:
    timeouts = DatabaseTimeouts(statement_seconds=4.0, lock_seconds=3.0, idle_in_transaction_seconds=60.0,
                                report_statement_seconds=900.0)

    assert timeouts.for_reports() == DatabaseTimeouts(statement_seconds=900.0, lock_seconds=3.0,
                                                      idle_in_transaction_seconds=60.0, report_statement_seconds=900.0)
