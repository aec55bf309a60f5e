"""The member service's database on PostgreSQL, shared by its integration tests."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from services.member.db import SqlMemberUnitOfWork, start_mappers


@pytest.fixture
def engine(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("member")


@pytest.fixture
def uow(engine: Engine) -> Callable[[], SqlMemberUnitOfWork]:
    start_mappers()
    return functools.partial(SqlMemberUnitOfWork, engine, "member")
