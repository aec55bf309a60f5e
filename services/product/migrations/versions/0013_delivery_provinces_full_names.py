"""Delivery-table rows by a province's full name: product pages now look the estimate up by it.

The seed (and staff) wrote rows by short name ("上海"), while addresses and WeChat's region pickers name a province in
full ("上海市"): a page asked for 上海市 missed the row and showed the "*" estimate. A short-named row is renamed to
its full name; where a full-named row exists too, that one stays (the one full-name lookups have been finding; staff
set it, the seed never wrote one) and the short one goes. Rows naming no province are left as they were.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.formats import PROVINCE_SHORT_NAMES

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

delivery_estimates = sa.table("delivery_estimates", sa.column("province", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    named = set(bind.execute(sa.select(delivery_estimates.c.province)).scalars())
    for short, full in PROVINCE_SHORT_NAMES.items():
        if short not in named:
            continue
        if full in named:
            bind.execute(sa.delete(delivery_estimates).where(delivery_estimates.c.province == short))
        else:
            bind.execute(sa.update(delivery_estimates).where(delivery_estimates.c.province == short)
                         .values(province=full))


def downgrade() -> None:
    pass  # full names were always valid rows: nothing to undo
