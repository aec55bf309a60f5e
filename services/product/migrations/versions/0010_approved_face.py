"""A product's name and first image at its last approval: off sale, carts show these, never an edit awaiting audit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

products = sa.table("products", sa.column("id", sa.BigInteger), sa.column("name", sa.String),
                    sa.column("images", sa.JSON), sa.column("status", sa.String),
                    sa.column("approved_name", sa.String), sa.column("approved_image", sa.String))
audit_log = sa.table("product_audit_log", sa.column("id", sa.BigInteger), sa.column("product_id", sa.BigInteger),
                     sa.column("action", sa.String), sa.column("after", sa.JSON))


def upgrade() -> None:
    op.add_column("products", sa.Column("approved_name", sa.String(100), nullable=False, server_default=""))
    op.add_column("products", sa.Column("approved_image", sa.String(512), nullable=False, server_default=""))
    bind = op.get_bind()
    # An APPROVED product's content is what was approved; one edited since (waiting for audit, rejected, a draft
    # again) had its content at the approval recorded in the audit log's "approve" entry: the latest one wins.
    unapproved = sa.select(products.c.id).where(products.c.status != "APPROVED")
    approvals: dict[int, tuple[str, list[str]]] = {}
    for entry in bind.execute(sa.select(audit_log.c.product_id, audit_log.c.after)
                              .where(audit_log.c.action == "approve", audit_log.c.product_id.in_(unapproved))
                              .order_by(audit_log.c.id)):
        after = entry.after or {}
        approvals[entry.product_id] = (after.get("name") or "", after.get("images") or [])
    faces = []
    for product in bind.execute(sa.select(products.c.id, products.c.status, products.c.name, products.c.images)):
        name, images = ((product.name, product.images or []) if product.status == "APPROVED"
                        else approvals.get(product.id, ("", [])))
        if name:
            faces.append({"product_id": product.id, "face_name": name[:100], "face_image": (images[0] if images else "")[:512]})
    if faces:
        bind.execute(sa.update(products).where(products.c.id == sa.bindparam("product_id"))
                     .values(approved_name=sa.bindparam("face_name"), approved_image=sa.bindparam("face_image")), faces)


def downgrade() -> None:
    op.drop_column("products", "approved_image")
    op.drop_column("products", "approved_name")
