"""Alembic environment of the user service."""

from services.common.migrations import run_migrations
from services.user.db import metadata

run_migrations(metadata)
