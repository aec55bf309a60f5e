"""Fixtures shared by every suite live in tests/fixtures/ and are registered here."""

import pytest

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
    "tests.fixtures.platform",
    "tests.fixtures.fake_services",
    "tests.fixtures.simulator",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, every test that uses the running platform goes to one worker, which starts it once."""
    for item in items:
        if "platform" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("platform"))
