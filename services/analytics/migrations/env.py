"""Alembic environment of the analytics service."""

from services.analytics.db import metadata
from services.common.migrations import run_migrations

run_migrations(metadata)
