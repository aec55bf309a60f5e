"""Fixtures shared by every suite live in tests/fixtures/ and are registered here."""

import pytest

from tests.reliability.catalogue import listed

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
    "tests.fixtures.outbox",
    "tests.fixtures.platform",
    "tests.fixtures.fake_services",
    "tests.fixtures.simulator",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lend the `reliability` marker to the battery's tests that live beside their features (catalogue.py)."""
    for item in items:
        if listed(item.nodeid):
            item.add_marker(pytest.mark.reliability)
