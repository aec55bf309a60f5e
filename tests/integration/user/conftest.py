"""User service database fixtures: an engine per backend (PostgreSQL, SQLite), its unit of work, a token issuer."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.user.db import SqlUserUnitOfWork, start_mappers
from services.user.tokens import TokenIssuer
from tests.fixtures.keys import JwtKeys


@pytest.fixture
def engine(each_service_engine: Callable[[str], Engine]) -> Engine:
    return each_service_engine("user")


@pytest.fixture
def pg_engine(service_engine: Callable[[str], Engine]) -> Engine:
    """PostgreSQL only: for races, which need its row and advisory locks."""
    return service_engine("user")


@pytest.fixture
def uow(engine: Engine) -> Callable[[], SqlUserUnitOfWork]:
    start_mappers()
    return functools.partial(SqlUserUnitOfWork, engine, "user")


@pytest.fixture
def pg_uow(pg_engine: Engine) -> Callable[[], SqlUserUnitOfWork]:
    start_mappers()
    return functools.partial(SqlUserUnitOfWork, pg_engine, "user")


@pytest.fixture
def issuer(jwt_keys: JwtKeys) -> TokenIssuer:
    return TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86400)
