"""The user domain classes are mapped onto the tables only when start_mappers() says so."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PROBE = """
from sqlalchemy import inspect
from sqlalchemy.exc import NoInspectionAvailable
from services.user import db
from services.user.domain import User
try:
    inspect(User)
    print("mapped at import")
except NoInspectionAvailable:
    db.start_mappers()
    db.start_mappers()
    print("mapped by start_mappers" if inspect(User).local_table is db.users else "mapped elsewhere")
"""


def test_importing_the_user_tables_maps_nothing_and_start_mappers_maps_once() -> None:
    # A fresh interpreter: in this one another test may have started the mappers already.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.strip() == "mapped by start_mappers"
