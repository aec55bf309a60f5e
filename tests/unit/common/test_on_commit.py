"""`uow.on_commit`: an action runs once its transaction commits, never when it rolls back (database and fake alike)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.common.uow import SqlUnitOfWork, UnitOfWork
from tests.fakes import FakeUnitOfWork


@pytest.fixture(params=["sql", "fake"])
def make_uow(request: pytest.FixtureRequest, sqlite_service_engine: Callable[[str], Engine]) -> Callable[[], UnitOfWork]:
    if request.param == "fake":
        return FakeUnitOfWork
    engine = sqlite_service_engine("user")
    return lambda: SqlUnitOfWork(engine, "user")


def test_an_action_runs_after_the_commit_and_only_once(make_uow: Callable[[], UnitOfWork]) -> None:
    ran: list[str] = []
    uow = make_uow()
    with uow:
        uow.on_commit(lambda: ran.append("first"))
        assert ran == []
        uow.commit()
        uow.commit()  # a second commit in the same block runs nothing again
    with uow:
        uow.commit()

    assert ran == ["first"]


def test_an_action_of_a_transaction_that_rolls_back_never_runs(make_uow: Callable[[], UnitOfWork]) -> None:
    ran: list[str] = []
    uow = make_uow()
    with pytest.raises(RuntimeError), uow:
        uow.on_commit(lambda: ran.append("failed"))
        raise RuntimeError("the use case failed")
    with uow:
        uow.on_commit(lambda: ran.append("left without commit"))
    with uow:
        uow.on_commit(lambda: ran.append("rolled back"))
        uow.rollback()
        uow.commit()
    with uow:
        uow.on_commit(lambda: ran.append("committed"))
        uow.commit()

    assert ran == ["committed"]
