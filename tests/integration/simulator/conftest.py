"""Until tests/conftest.py registers tests.fixtures.simulator, this suite imports its fixture directly."""

from tests.fixtures.simulator import simulator  # noqa: F401 - a fixture, used by name
