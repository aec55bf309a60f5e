"""Alembic environment of the product service."""

from services.common.migrations import run_migrations
from services.product.db import metadata

run_migrations(metadata)
