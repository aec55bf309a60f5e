"""late-payment-received of a WeChat Pay late payment is now published once per refund number under run_once (scope
"late-payment-received", key LATE<order_no>), no longer only with the order's history step. Every one published
before (it is in the outbox, which keeps its rows) claims its key here, so a replayed notify of such an order does not
publish it a second time; an order whose step an earlier release recorded without the event gets it once.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op
from mall.events.v1.order_events_pb2 import LatePaymentReceived
from sqlalchemy import select

from services.common import events
from services.common.db import utcnow
from services.common.idempotency import fingerprint, idempotency_keys
from services.common.outbox import outbox

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SCOPE = "late-payment-received"  # services/order/service.py LATE_RECEIVED_SCOPE, as it is at this revision


def upgrade() -> None:
    bind = op.get_bind()
    claimed = {row.key for row in bind.execute(select(idempotency_keys.c.key)
                                               .where(idempotency_keys.c.scope == SCOPE))}
    rows = bind.execute(select(outbox.c.envelope).where(outbox.c.event_type == "late-payment-received")
                        .order_by(outbox.c.id)).all()
    for row in rows:
        envelope = events.decode(row.envelope)
        received = events.unpack(envelope, LatePaymentReceived)
        if received.channel != "wechat" or not received.refund_no or received.refund_no in claimed:
            continue  # a wallet charge's is published with its credit back, in one transaction: no key
        claimed.add(received.refund_no)
        bind.execute(idempotency_keys.insert().values(
            scope=SCOPE, key=received.refund_no, request_hash=fingerprint(str(received.amount_fen).encode()),
            response=envelope.event_id.encode(), created_at=utcnow()))


def downgrade() -> None:
    op.execute(idempotency_keys.delete().where(idempotency_keys.c.scope == SCOPE))
