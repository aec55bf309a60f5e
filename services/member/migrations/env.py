"""Alembic environment of the member service."""

from services.common.migrations import run_migrations
from services.member.db import metadata

run_migrations(metadata)
