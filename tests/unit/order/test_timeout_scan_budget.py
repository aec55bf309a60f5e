"""The payment timeout within its scan's budget: closing prepaid orders at WeChat Pay stops between two closes once
the budget is spent, and the next scan closes the rest (they stay due), each once. Time is a fake clock each close
moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from services.common.uow import RoundBudget
from services.common.wechatpay import PaymentNotice
from services.order import service
from tests.unit.common.test_liveness import FakeClock
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_cart_checkout_payment import FakeWechatPay, notice, prepaid_order


class SlowCloses(FakeWechatPay):
    """WeChat Pay closing a transaction in 10 s of `clock`, then reporting it CLOSED."""

    def __init__(self, clock: FakeClock, notices: dict[str, PaymentNotice]) -> None:
        super().__init__()
        self.clock, self.notices = clock, notices

    def close(self, out_trade_no: str) -> None:
        self.clock.advance(10)
        super().close(out_trade_no)

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        return self.notices[out_trade_no]


def test_a_timeout_scan_past_its_budget_leaves_the_other_prepaid_orders_due_for_the_next_scan(shop: Shop) -> None:
    orders = [prepaid_order(shop, key=f"k{number}") for number in range(3)]
    clock = FakeClock()
    wechat = SlowCloses(clock, {order.order_no: replace(notice(order), trade_state="CLOSED", transaction_id=None)
                                for order in orders})
    budget, deadline = RoundBudget(15, 0, clock=clock), NOW + timedelta(minutes=30)

    scans = []
    for _ in range(2):
        budget.start()  # as the job does before each scan
        scans.append(service.expire_orders(shop.uow, wechat=wechat, now=deadline, budget=budget))

    # 10 s a close within 15 s: the second starts at 10 s, the third would start past the budget
    assert (scans, wechat.closed) == ([2, 1], [order.order_no for order in orders])
    assert [order.status for order in orders] == ["CANCELLED"] * 3
