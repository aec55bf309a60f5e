"""Delivery-table rows by a province's full name: product pages now look the estimate up by it.

The seed (and staff) wrote rows by short name ("上海"), while addresses and WeChat's region pickers name a province in
full ("上海市"): a page asked for 上海市 missed the row and showed the "*" estimate. A short-named row is renamed to
its full name; where a full-named row exists too, that one stays (the one full-name lookups have been finding; staff
set it, the seed never wrote one) and the short one goes. A row naming no province ("Shanghai", older rules took any
1-32 characters) can never be looked up and no route could change or remove it any more: it goes too. Every row that
goes is recorded in settings_audit_log (action "delete", actor 0: this migration) with its estimate.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime
from services.common.formats import PROVINCE_SHORT_NAMES, PROVINCES

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

delivery_estimates = sa.table("delivery_estimates", sa.column("province", sa.String),
                              sa.column("estimate_days", sa.Integer))
settings_audit_log = sa.table("settings_audit_log", sa.column("entity", sa.String), sa.column("entity_key", sa.String),
                              sa.column("actor_id", sa.BigInteger), sa.column("action", sa.String),
                              sa.column("at", UTCDateTime), sa.column("before", sa.JSON),
                              sa.column("after", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    named = dict(bind.execute(sa.select(delivery_estimates.c.province, delivery_estimates.c.estimate_days)).all())
    gone = []
    for province, days in named.items():
        full = PROVINCE_SHORT_NAMES.get(province)
        if province == "*" or province in PROVINCES:
            continue
        if full is not None and full not in named:
            bind.execute(sa.update(delivery_estimates).where(delivery_estimates.c.province == province)
                         .values(province=full))
            continue
        bind.execute(sa.delete(delivery_estimates).where(delivery_estimates.c.province == province))
        gone.append({"entity": "delivery", "entity_key": province, "actor_id": 0, "action": "delete",
                     "at": datetime.now(UTC), "before": {"estimate_days": days}, "after": None})
    if gone:
        bind.execute(sa.insert(settings_audit_log), gone)


def downgrade() -> None:
    pass  # full names were always valid rows: nothing to undo
