"""Rebuild every product's search terms: search now NFKC-normalises queries and indexed text alike.

A product indexed before that kept its full-width terms ("ｍａｔｅ６０"), which a query ("Ｍａｔｅ６０", now
"mate60") no longer meets; the terms are rewritten here with the tokenizer the service indexes with
(services.product.search.term_weights, the function `_index` calls on every edit), so both agree.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.product.search import term_weights

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 500

products = sa.table("products", sa.column("id", sa.BigInteger), sa.column("name", sa.String),
                    sa.column("subtitle", sa.String), sa.column("description", sa.Text),
                    sa.column("brand_id", sa.BigInteger))
brands = sa.table("brands", sa.column("id", sa.BigInteger), sa.column("name", sa.String))
search_terms = sa.table("search_terms", sa.column("term", sa.String), sa.column("product_id", sa.BigInteger),
                        sa.column("weight", sa.Integer))


def upgrade() -> None:
    bind = op.get_bind()
    after = 0
    while True:
        batch = bind.execute(
            sa.select(products.c.id, products.c.name, products.c.subtitle, products.c.description,
                      brands.c.name.label("brand"))
            .select_from(products.outerjoin(brands, brands.c.id == products.c.brand_id))
            .where(products.c.id > after).order_by(products.c.id).limit(BATCH)).all()
        if not batch:
            return
        ids = [product.id for product in batch]
        bind.execute(sa.delete(search_terms).where(search_terms.c.product_id.in_(ids)))
        rows = [{"term": term, "product_id": product.id, "weight": weight} for product in batch
                for term, weight in term_weights(name=product.name, subtitle=product.subtitle or "",
                                                 description=product.description or "",
                                                 brand=product.brand or "").items()]
        if rows:
            bind.execute(sa.insert(search_terms), rows)
        after = ids[-1]


def downgrade() -> None:
    pass  # the terms rebuilt are those the service writes anyway: nothing to undo
