"""integer_sum on PostgreSQL: a BIGINT column's sum comes back as an int, exactly, not the NUMERIC Decimal of SUM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, MetaData, Table, func, select

from services.common.db import integer_sum

pytestmark = pytest.mark.integration

amounts = Table("integer_sum_amounts", MetaData(), Column("id", Integer, primary_key=True),
                Column("kind", Integer, nullable=False), Column("fen", BigInteger, nullable=False),
                prefixes=["TEMPORARY"])
BIG = 2**53 + 1  # past a float's exact integers: a sum gone through float would be off by one


@pytest.fixture
def connection(service_engine: Callable[[str], Engine]) -> Iterator[Connection]:
    with service_engine("member").connect() as connection:
        amounts.create(connection)
        connection.execute(amounts.insert(), [{"kind": 1, "fen": BIG}, {"kind": 1, "fen": 2}, {"kind": 2, "fen": -7}])
        yield connection
        connection.rollback()


def test_postgresql_sums_a_bigint_column_as_a_decimal(connection: Connection) -> None:
    total = connection.execute(select(func.sum(amounts.c.fen))).scalar_one()

    assert (type(total), total) == (Decimal, Decimal(BIG - 5))  # why integer_sum exists


def test_integer_sum_of_a_bigint_column_is_an_exact_int(connection: Connection) -> None:
    total = connection.execute(select(integer_sum(amounts.c.fen))).scalar_one()

    assert (type(total), total) == (int, BIG - 5)


def test_integer_sum_per_group_and_over_no_rows_is_an_int(connection: Connection) -> None:
    groups = connection.execute(select(amounts.c.kind, integer_sum(amounts.c.fen)).group_by(amounts.c.kind)
                                .order_by(amounts.c.kind)).all()
    none = connection.execute(select(integer_sum(amounts.c.fen)).where(amounts.c.kind == 3)).scalar_one()

    assert [(kind, type(total), total) for kind, total in groups] == [(1, int, BIG + 2), (2, int, -7)]
    assert (type(none), none) == (int, 0)
