"""Fixtures shared by every suite live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
    "tests.fixtures.outbox",
    "tests.fixtures.platform",
    "tests.fixtures.fake_services",
    "tests.fixtures.simulator",
]
