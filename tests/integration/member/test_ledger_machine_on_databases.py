"""The ledger state machine (tests/unit/member/ledger_machine.py) on PostgreSQL and on SQLite, the make run default."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, inspect, text

from services.member.db import SqlMemberUnitOfWork, start_mappers
from services.member.uow import MemberUnitOfWork
from tests.fixtures.postgres import truncate_all
from tests.unit.member.ledger_machine import ledger_machine

pytestmark = pytest.mark.integration


def emptied(engine: Engine) -> Callable[[], Callable[[], MemberUnitOfWork]]:
    def store() -> Callable[[], MemberUnitOfWork]:
        if engine.dialect.name == "postgresql":
            truncate_all(engine)
        else:
            with engine.begin() as conn:
                conn.execute(text("PRAGMA defer_foreign_keys = ON"))  # every row goes: order does not matter
                for table in inspect(conn).get_table_names():
                    if table != "alembic_version":
                        conn.execute(text(f'DELETE FROM "{table}"'))
        return functools.partial(SqlMemberUnitOfWork, engine, "member")
    return store


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_ledger_operations_keep_every_balance_non_negative_and_equal_to_its_entries_in_the_database(
        database: str, request: pytest.FixtureRequest) -> None:
    fixture = "service_engine" if database == "postgresql" else "sqlite_service_engine"
    engine = request.getfixturevalue(fixture)("member")
    start_mappers()
    machine = ledger_machine(emptied(engine))
    machine.TestCase.settings = settings(max_examples=12, stateful_step_count=25, deadline=None, database=None,
                                         suppress_health_check=list(HealthCheck))

    machine.TestCase().runTest()
