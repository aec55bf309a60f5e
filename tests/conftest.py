"""Fixtures shared by every suite live in tests/fixtures/ and are registered here."""

import logging
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.reliability.catalogue import listed

# No property test has a time limit: how long an example takes depends on how busy the machine is (a timing assertion,
# which belongs in bench/), and hypothesis' default 200 ms deadline failed examples under two busy xdist workers.
settings.register_profile("mall", deadline=None)
settings.load_profile("mall")

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
    "tests.fixtures.outbox",
    "tests.fixtures.platform",
    "tests.fixtures.fake_services",
    "tests.fixtures.simulator",
    "tests.fixtures.browser",
    "tests.fixtures.s3",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lend the `reliability` marker to the battery's tests that live beside their features (catalogue.py)."""
    for item in items:
        if listed(item.nodeid):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs a service's `configure_logging` leaves the root logger as it found it: otherwise later tests
    on the worker see INFO records they did not ask for and write to a stderr pytest has closed."""
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    handlers, level, kafka_level = root.handlers[:], root.level, kafka.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)  # setLevel, not `.level =`: it also clears every logger's cached isEnabledFor
    kafka.setLevel(kafka_level)
