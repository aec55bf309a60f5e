"""User service unit fixtures: an empty in-memory unit of work and password hasher (files that need seeded users
define their own `uow`)."""

from __future__ import annotations

import pytest

from tests.fakes import FakePasswords, FakeUserUnitOfWork


@pytest.fixture
def uow() -> FakeUserUnitOfWork:
    return FakeUserUnitOfWork()


@pytest.fixture
def passwords() -> FakePasswords:
    return FakePasswords()
