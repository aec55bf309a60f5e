"""`make audit`: cross-service invariants of a running (or stopped) platform, read from its databases.

    python -m tools.audit            # the databases `make run` uses (MINIMALL_VAR, <SERVICE>_DATABASE_URL)

Checks, each reported with its mismatches (exit status 1 if any):
- stock: for every SKU, available + reserved + sold == initial stock + adjustments, and each of the three
  equals the sum of its stock ledger (the product service's stock_movements, checked by the product service:
  services.product.service.check_stock_ledger); no SKU's stock or sales below zero; each SKU's sales equal what its
  orders' stock movements sold and kept (`order_sales`); no reservation still held long after it expired (the sweep
  releases them);
- coupons: the coupons locked in the member service are exactly those of the unpaid orders using them;
- ledgers: every wallet and points balance equals the sum of its entries;
- events: every order-paid event written by the order service was applied by product, member and analytics;
- outbox: no event in any service's outbox waits unsent for more than a minute.
Read-only: it never writes. Run it on a quiet platform; an order in flight can show as a passing mismatch.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, and_, func, or_, select

from services.common.config import SERVICES, Env, database_url, var_dir
from services.common.db import integer_sum, make_engine
from services.common.outbox import outbox, processed_events
from services.member import service as member_service
from services.member.db import SqlMemberUnitOfWork, coupons
from services.member.db import start_mappers as start_member_mappers
from services.order.db import orders
from services.product import service as product_service
from services.product.db import SqlProductUnitOfWork, reservations, skus, stock_movements
from services.product.db import start_mappers as start_product_mappers
from services.product.domain import MovementKind

ROOT = Path(__file__).resolve().parents[1]
OUTBOX_GRACE = timedelta(minutes=1)
RESERVATION_GRACE = timedelta(minutes=5)
ORDER_PAID_CONSUMERS = ("product", "member", "analytics")


@dataclass
class Check:
    name: str
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)


def database_urls(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Each service's database as the services `make run` starts find it (services.common.config.database_url)."""
    env = Env({**environ, "MINIMALL_VAR": str(var_dir(Env(environ), root=ROOT))})
    return {s: database_url(env, s) for s in SERVICES}


# Sales move with an order's reservation (its order_no the reference); returns with an after-sales case, a refund, or
# the order itself (units returned before its sale); `opening` holds the sales made before the ledger.
ORDER_SALE_KINDS = (MovementKind.CONFIRM.value, MovementKind.LATE_SALE.value, MovementKind.CANCEL_PAID.value)
UNTIED_SALE_KINDS = (MovementKind.RETURN.value, MovementKind.OPENING.value)


def order_sales(conn: Connection) -> dict[int, int]:
    """Per SKU, the units its orders' stock movements sold and kept: `confirm` and `late_sale` (+), `cancel_paid` of
    the units a paid cancellation gave back and every `return` restock (-), plus the `opening` sales.

    Read from the ledger, not from the reservations' status: a reservation a paid cancellation RELEASED after a
    partial return, or one whose `returned` units waited for its sale (an order-returned applied before the
    order-paid), sold what its movements say. A sale movement must reference a reservation of its order and SKU;
    one that does not was not an order's sale and is not counted."""
    tied = and_(reservations.c.order_no == stock_movements.c.reference, reservations.c.sku_id == stock_movements.c.sku_id)
    return dict(conn.execute(
        select(stock_movements.c.sku_id, integer_sum(stock_movements.c.sold))
        .select_from(stock_movements.outerjoin(reservations, tied))
        .where(or_(stock_movements.c.kind.in_(UNTIED_SALE_KINDS),
                   and_(stock_movements.c.kind.in_(ORDER_SALE_KINDS), reservations.c.id.is_not(None))))
        .group_by(stock_movements.c.sku_id)).all())


def check_stock(product: Engine, now: datetime) -> Check:
    check = Check("stock")
    with product.connect() as conn:
        kept = order_sales(conn)
        for sku_id, stock, sales in conn.execute(select(skus.c.id, skus.c.stock, skus.c.sales).order_by(skus.c.id)):
            check.checked += 1
            if stock < 0:
                check.mismatches.append(f"sku {sku_id}: stock {stock} below zero")
            if sales < 0:  # more units came back than were ever sold (a return of a sale never made)
                check.mismatches.append(f"sku {sku_id}: sales {sales} below zero")
            sold = kept.get(sku_id, 0)
            if sales != sold:
                check.mismatches.append(f"sku {sku_id}: sales {sales} but its orders' stock movements sold {sold} "
                                        "units not returned or cancelled")
        stale = conn.execute(select(reservations.c.order_no, reservations.c.sku_id).where(and_(
            reservations.c.status == "RESERVED", reservations.c.expires_at < now - RESERVATION_GRACE))).all()
    check.mismatches += [f"order {o}: sku {s} still reserved long after its expiry" for o, s in stale]
    start_product_mappers()
    _, unbalanced = product_service.check_stock_ledger(SqlProductUnitOfWork(product, "product"))
    check.mismatches += [balance.describe() for balance in unbalanced]
    return check


def check_coupons(member: Engine, order: Engine) -> Check:
    check = Check("coupons")
    with member.connect() as conn:
        locked = set(conn.execute(select(coupons.c.order_no).where(coupons.c.status == "locked")).scalars())
    with order.connect() as conn:
        using = set(conn.execute(select(orders.c.order_no).where(
            orders.c.status == "PENDING_PAYMENT", orders.c.coupon_id != 0)).scalars())
    check.checked = len(locked | using)
    check.mismatches += [f"order {o}: coupon locked but the order is not awaiting payment" for o in sorted(locked - using)]
    check.mismatches += [f"order {o}: awaits payment with a coupon that is not locked" for o in sorted(using - locked)]
    return check


def check_ledgers(member: Engine) -> Check:
    start_member_mappers()
    check, after = Check("ledgers"), 0
    while True:  # a range of accounts at a time, as the admin route does
        checked = member_service.check_ledgers(SqlMemberUnitOfWork(member, "member"), after_account_id=after)
        check.checked += checked.checked
        check.mismatches += [f"user {m.user_id} {m.account}: balance {m.balance}, entries sum to {m.entries_sum}"
                             for m in checked.mismatches]
        if not checked.checked:
            return check
        after = checked.last_account_id


def check_order_paid_consumed(engines: Mapping[str, Engine]) -> Check:
    check = Check("order-paid consumed")
    with engines["order"].connect() as conn:
        written = set(conn.execute(select(outbox.c.event_id).where(outbox.c.event_type == "order-paid")).scalars())
    check.checked = len(written)
    for consumer in ORDER_PAID_CONSUMERS:
        with engines[consumer].connect() as conn:
            applied = set(conn.execute(select(processed_events.c.event_id).where(
                processed_events.c.consumer == consumer, processed_events.c.event_type == "order-paid")).scalars())
        check.mismatches += [f"{consumer} never applied order-paid {e}" for e in sorted(written - applied)]
    return check


def check_outboxes(engines: Mapping[str, Engine], now: datetime) -> Check:
    check = Check("outbox")
    for service, engine in engines.items():
        with engine.connect() as conn:
            check.checked += conn.execute(select(func.count()).select_from(outbox)).scalar_one()
            late = conn.execute(select(outbox.c.event_type, func.count()).where(
                outbox.c.published_at.is_(None), outbox.c.created_at < now - OUTBOX_GRACE)
                .group_by(outbox.c.event_type)).all()
        check.mismatches += [f"{service}: {n} {t} event(s) unsent for over a minute" for t, n in late]
    return check


def audit(urls: Mapping[str, str], now: datetime | None = None) -> list[Check]:
    now = now or datetime.now(UTC)
    # No session timeouts: the checks scan whole tables (every stock movement, ledger and outbox), which on a
    # production-size database run well past a service's statement timeout (make_engine).
    engines = {service: make_engine(url, timeouts=None) for service, url in urls.items()}
    try:
        steps: list[Callable[[], Check]] = [
            functools.partial(check_stock, engines["product"], now),
            functools.partial(check_coupons, engines["member"], engines["order"]),
            functools.partial(check_ledgers, engines["member"]),
            functools.partial(check_order_paid_consumed, engines),
            functools.partial(check_outboxes, engines, now),
        ]
        return [step() for step in steps]
    finally:
        for engine in engines.values():
            engine.dispose()


def report(checks: list[Check]) -> str:
    lines = [f"{'check':<22}{'checked':>9}{'mismatches':>12}"]
    lines += [f"{c.name:<22}{c.checked:>9}{len(c.mismatches):>12}" for c in checks]
    lines += [f"  {c.name}: {m}" for c in checks for m in c.mismatches]
    total = sum(len(c.mismatches) for c in checks)
    lines.append("audit: no mismatches" if total == 0 else f"audit: {total} mismatch(es)")
    return "\n".join(lines)


def main() -> int:
    checks = audit(database_urls())
    print(report(checks))
    return 1 if any(c.mismatches for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
