"""The in-memory unit of work behaves like the database one where use-case tests rely on it."""

from __future__ import annotations

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered

from services.common.errors import Conflict
from tests.fakes import FakeUnitOfWork


def test_events_published_in_a_block_left_without_commit_are_dropped() -> None:
    uow = FakeUnitOfWork()
    with uow:
        uow.publish(UserRegistered(user_id=1), aggregate_id="1")
    with uow:
        uow.publish(UserRegistered(user_id=2), aggregate_id="2")
        uow.commit()

    assert ([e.aggregate_id for e in uow.published], uow.commits) == (["2"], 1)


def test_publishing_a_message_that_is_no_event_fails_as_in_the_database() -> None:
    with FakeUnitOfWork() as uow, pytest.raises(ValueError, match="not an event payload"):
        uow.publish(EventEnvelope(), aggregate_id="1")


def test_run_once_replays_the_committed_response_and_refuses_another_body() -> None:
    uow = FakeUnitOfWork()
    runs: list[int] = []

    def execute() -> bytes:
        runs.append(1)
        return b"order 1001"

    with uow:
        uow.run_once(scope="s", key="k", request=b"a", execute=execute)
        uow.commit()
    with uow:
        replay = uow.run_once(scope="s", key="k", request=b"a", execute=execute)
        with pytest.raises(Conflict):
            uow.run_once(scope="s", key="k", request=b"b", execute=execute)

    assert (replay, len(runs)) == (b"order 1001", 1)
