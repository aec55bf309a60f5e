"""Alembic environment of the order service."""

from services.common.migrations import run_migrations
from services.order.db import metadata

run_migrations(metadata)
