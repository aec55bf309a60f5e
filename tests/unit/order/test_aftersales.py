"""After-sales cases (O4) on fakes: opening, the window, one open case per line, decisions, returns, refunds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mall.order.v1 import after_sale_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.order import aftersales, refunds, service
from services.order.aftersales import AfterSaleSettings, CaseLine, CaseRequest
from services.order.domain import Order, RefundStatus, paid_shares
from services.order.grpc_api import AfterSaleServicer
from services.order.service import CheckoutInput
from services.order.uow import CaseSearch, OrderUnitOfWork
from tests.fakes import FakeRefundPayments, LostAnswerRefunds
from tests.unit.order.conftest import NOW, Shop, paid_order

SETTINGS = AfterSaleSettings(after_sale_days=7)
IMAGE = "/media/uploads/" + "a" * 32 + ".jpg"  # an upload named before names were signed for their uploader
SIGNED_IMAGE = "/media/uploads/" + "a" * 32 + "-" + "b" * 32 + ".webp"  # as POST /uploads names one now


@dataclass
class FakeRefunder:
    """The refund engine: records each start; settles at once (like a wallet refund) unless told otherwise."""

    settle: bool | None = True  # True: SUCCESS at once, False: CLOSED at once, None: left pending
    fail: DomainError | None = None
    calls: list[dict] = field(default_factory=list)
    asked_again: list[str] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)  # the numbers it started refunds under (given, and its own)

    def start(self, uow: OrderUnitOfWork, *, order_id: int, lines: list[CaseLine], reason: str, actor: str,
              source: str, now: datetime, refund_no: str = "") -> str:
        if self.fail is not None:
            raise self.fail
        self.numbers.add(refund_no)
        refund_no = f"RF{len(self.calls) + 1}"
        self.numbers.add(refund_no)
        self.calls.append({"order_id": order_id, "lines": [(line.line_id, line.quantity, line.amount_fen)
                                                           for line in lines], "source": source})
        if self.settle is not None:
            with uow:
                aftersales.refund_settled(uow, int(source.partition(":")[2]), refund_no=refund_no,
                                          status=RefundStatus.SUCCESS if self.settle else RefundStatus.CLOSED,
                                          now=now)
                uow.commit()
        return refund_no

    def again(self, uow: OrderUnitOfWork, *, refund_no: str, actor: str, now: datetime) -> None:
        self.asked_again.append(refund_no)

    def started(self, uow: OrderUnitOfWork, *, refund_no: str) -> bool:
        return refund_no in self.numbers


def delivered(shop: Shop, *items: tuple[int, int], user_id: int = 1, key: str = "paid") -> Order:
    order = paid_order(shop, *items, user_id=user_id, key=key)
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S" + key, lines=None, actor="staff:7",
                       now=NOW)
    return service.confirm_receipt(shop.uow, user_id=user_id, order_id=order.id, now=NOW + timedelta(days=2))


def ask(shop: Shop, order: Order, lines: dict[int, int], *, kind: str = "refund_only", user_id: int = 1,
        now: datetime = NOW + timedelta(days=3)) -> aftersales.AfterSale:
    return aftersales.open_case(shop.uow, SETTINGS, user_id=user_id, now=now, request=CaseRequest(
        order_id=order.id or 0, type=kind, lines=lines, reason="broken", images=(IMAGE,)))


def test_a_refund_only_case_is_approved_refunded_and_closed_with_every_step_in_its_history(shop: Shop) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    first = order.lines[0].id or 0
    case = ask(shop, order, {first: 1})
    assert (case.status, case.refund_fen, [(line.line_id, line.quantity) for line in case.lines]) == (
        "REQUESTED", 1999, [(first, 1)])
    refunder = FakeRefunder()
    done = aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=True, reason="ok", actor="staff:8",
                             now=NOW + timedelta(days=4))
    assert refunder.calls == [{"order_id": order.id, "lines": [(first, 1, 1999)], "source": f"after_sale:{case.id}"}]
    assert (done.status, done.refund_no) == ("REFUNDED", "RF1")
    assert [(step.status, step.actor, step.reason) for step in done.history] == [
        ("REQUESTED", "user:1", "broken"), ("REFUNDING", "staff:8", "ok"), ("REFUNDED", "refund:RF1", "refunded")]
    again = ask(shop, order, {first: 1})  # the line is free again: its last unit
    assert again.refund_fen == 1999


def test_a_case_keeps_uploads_of_either_name_form_the_gateway_let_through(shop: Shop) -> None:
    order = delivered(shop, (101, 1))

    case = aftersales.open_case(shop.uow, SETTINGS, user_id=1, now=NOW + timedelta(days=3), request=CaseRequest(
        order_id=order.id or 0, type="refund_only", lines={order.lines[0].id or 0: 1}, reason="broken",
        images=(SIGNED_IMAGE, IMAGE)))

    assert case.images == [SIGNED_IMAGE, IMAGE]


def test_through_the_refund_engine_units_return_their_share_and_all_of_them_exactly_the_goods_paid(
        shop: Shop) -> None:
    shop.members.bp = 9_500  # 5498 - 274 level discount = 5224 paid, split 3798 / 1426 over the lines
    order = delivered(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    engine = aftersales.EngineRefunder(None, shop.members)  # a wallet payment: refunded at once
    uow = lambda: shop.uow  # noqa: E731
    amounts = []
    for lines in ({second: 1}, {second: 0, first: 0}):
        case = ask(shop, order, lines)
        done = aftersales.decide(uow, engine, case_id=case.id, approve=True, reason="ok", actor="staff:8")
        assert done.status == "REFUNDED" and done.refund_no in shop.members.balance_refunds
        amounts.append([(line.line_id, line.quantity, line.amount_fen) for line in done.lines])
    assert amounts == [[(second, 1, 475)], [(first, 2, 3798), (second, 2, 951)]]
    assert (order.refunded_fen, sum(shop.members.balance_refunds.values())) == (5224, 5224)
    with pytest.raises(Conflict) as nothing_left:
        ask(shop, order, {first: 1})
    assert nothing_left.value.details == {"line_id": first, "left": 0}
    assert [event.payload.amount_fen for event in shop.uow.published if event.event_type == "order-refunded"] == [
        475, 4749]


def test_one_open_case_per_line_and_never_more_units_than_bought(shop: Shop) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    ask(shop, order, {first: 1})
    with pytest.raises(Conflict) as busy:
        ask(shop, order, {first: 1, second: 1})
    assert (busy.value.code, busy.value.details) == ("AFTER_SALE_LINE_OPEN", {"lines": [first]})
    with pytest.raises(Conflict) as too_many:
        ask(shop, order, {second: 4})
    assert too_many.value.details == {"line_id": second, "left": 3}
    assert [(line.quantity, line.amount_fen) for line in ask(shop, order, {second: 0}).lines] == [(3, 1500)]
    with pytest.raises(InvalidInput) as foreign:
        ask(shop, order, {999: 1})
    assert foreign.value.code == "LINE_NOT_IN_ORDER"


def test_cases_open_while_shipped_and_until_the_window_after_delivery_closes(shop: Shop) -> None:
    unshipped = paid_order(shop, (101, 1), key="u")
    with pytest.raises(Conflict) as early:
        ask(shop, unshipped, {unshipped.lines[0].id: 1})
    assert early.value.details == {"status": "PAID", "action": "after_sale"}
    service.ship_order(shop.uow, order_id=unshipped.id, carrier="SF", tracking_no="1", lines=None, actor="staff:7",
                       now=NOW)
    assert ask(shop, unshipped, {unshipped.lines[0].id: 1}, now=NOW + timedelta(days=9)).status == "REQUESTED"
    order = delivered(shop, (102, 1), key="d")
    closes = order.completed_at + timedelta(days=7)
    with pytest.raises(DomainError) as late:
        ask(shop, order, {order.lines[0].id: 1}, now=closes + timedelta(seconds=1))
    assert late.value.code == "AFTER_SALE_WINDOW_CLOSED"
    assert ask(shop, order, {order.lines[0].id: 1}, now=closes).status == "REQUESTED"


def test_a_partly_shipped_order_takes_cases_on_its_shipped_units_only(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="P1", lines={first: 1},
                       actor="staff:7", now=NOW)
    with pytest.raises(Conflict) as unshipped:
        ask(shop, order, {second: 1}, kind="return_refund")
    assert (unshipped.value.code, unshipped.value.details) == ("AFTER_SALE_QUANTITY_INVALID",
                                                               {"line_id": second, "left": 0})
    with pytest.raises(Conflict) as more:
        ask(shop, order, {first: 2}, kind="return_refund")
    assert more.value.details == {"line_id": first, "left": 1}
    case = ask(shop, order, {first: 0}, kind="return_refund")  # 0: every shipped unit not refunded yet
    assert (case.status, [(line.line_id, line.quantity, line.amount_fen) for line in case.lines]) == (
        "REQUESTED", [(first, 1, 1999)])
    assert service.get_order(shop.uow, user_id=1, order_id=order.id).status == "PAID"


def test_a_refund_of_shipped_units_leaves_a_partly_shipped_order_paid_and_its_other_units_to_ship(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    first, second = (line.id or 0 for line in order.lines)
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="P1", lines={first: 1},
                       actor="staff:7", now=NOW)
    case = ask(shop, order, {first: 1})
    done = aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(None, shop.members), case_id=case.id,
                             approve=True, reason="ok", actor="staff:8")
    assert (done.status, shop.members.balance_refunds[done.refund_no]) == ("REFUNDED", 1999)
    assert (order.status, order.refunded_fen, order.unshipped()) == ("PAID", 1999, {first: 1, second: 3})
    rest = service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="P2", lines=None,
                              actor="staff:7", now=NOW)
    assert rest.status == "SHIPPED"
    assert [(line.quantity, line.amount_fen) for line in ask(shop, order, {first: 0}).lines] == [(1, 1999)]


def test_a_strangers_order_and_case_are_not_found_and_bad_input_is_refused(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    with pytest.raises(NotFound):
        ask(shop, order, {order.lines[0].id: 1}, user_id=2)
    case = ask(shop, order, {order.lines[0].id: 1})
    with pytest.raises(NotFound):
        aftersales.get_case(shop.uow, user_id=2, case_id=case.id)
    with pytest.raises(NotFound):
        aftersales.submit_return_shipment(shop.uow, user_id=2, case_id=case.id, carrier="SF", tracking_no="1")
    assert aftersales.get_case(shop.uow, user_id=None, case_id=case.id) is case
    bad = [dict(type="exchange"), dict(images=("https://evil.example/x.jpg",)), dict(images=(IMAGE,) * 10),
           dict(reason=" "), dict(lines={order.lines[0].id: -1})]
    for change in bad:
        fields = dict(order_id=order.id, type="refund_only", lines={order.lines[0].id: 1}, reason="r", images=())
        with pytest.raises(InvalidInput):
            aftersales.open_case(shop.uow, SETTINGS, user_id=1, request=CaseRequest(**(fields | change)))


def test_a_return_is_approved_shipped_back_received_restocked_and_refunded(shop: Shop) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    second = order.lines[1].id or 0
    case = ask(shop, order, {second: 2}, kind="return_refund")
    refunder = FakeRefunder()
    uow = lambda: shop.uow  # noqa: E731
    approved = aftersales.decide(uow, refunder, case_id=case.id, approve=True, reason="send it back", actor="staff:8")
    assert (approved.status, refunder.calls) == ("AWAITING_RETURN", [])
    with pytest.raises(Conflict) as early:
        aftersales.receive_return(uow, refunder, case_id=case.id, note="", actor="staff:9")
    assert early.value.details == {"status": "AWAITING_RETURN", "action": "receive"}
    sent = aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="ZTO", tracking_no="R1")
    assert (sent.status, sent.return_carrier, sent.return_tracking_no) == ("RETURN_SHIPPED", "ZTO", "R1")
    done = aftersales.receive_return(uow, refunder, case_id=case.id, note="intact", actor="staff:9")
    assert done.status == "REFUNDED" and refunder.calls[0]["lines"] == [(second, 2, 1000)]
    [returned] = [event.payload for event in shop.uow.published if event.event_type == "order-returned"]
    assert (returned.case_no, [(line.sku_id, line.quantity) for line in returned.lines]) == (case.case_no, [(102, 2)])
    assert [step.status for step in done.history] == ["REQUESTED", "AWAITING_RETURN", "RETURN_SHIPPED", "REFUNDING",
                                                     "REFUNDED"]


def test_a_rejected_case_closes_its_lines_and_a_second_decision_is_409_with_the_status(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})
    refunder = FakeRefunder()
    rejected = aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=False, reason="used",
                                 actor="staff:8")
    assert (rejected.status, rejected.history[-1].reason, refunder.calls) == ("REJECTED", "used", [])
    with pytest.raises(Conflict) as twice:
        aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=True, reason="", actor="staff:8")
    assert twice.value.details == {"status": "REJECTED", "action": "approve_refund"}
    assert ask(shop, order, {order.lines[0].id: 1}).status == "REQUESTED"


def test_a_refund_that_fails_leaves_the_case_refund_failed_and_staff_retry_it(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})
    uow = lambda: shop.uow  # noqa: E731
    refused = FakeRefunder(fail=Conflict("REFUND_EXCEEDS_PAID", "too much"))
    with pytest.raises(Conflict):
        aftersales.decide(uow, refused, case_id=case.id, approve=True, reason="ok", actor="staff:8")
    assert (case.status, case.history[-1].reason) == ("REFUND_FAILED", "REFUND_EXCEEDS_PAID: too much")
    closed = FakeRefunder(settle=False)
    assert aftersales.retry_refund(uow, closed, case_id=case.id, actor="staff:8").status == "REFUND_FAILED"
    with pytest.raises(Conflict):
        aftersales.decide(uow, closed, case_id=case.id, approve=True, reason="", actor="staff:8")
    pending = FakeRefunder(settle=None)
    waiting = aftersales.retry_refund(uow, pending, case_id=case.id, actor="staff:8")
    assert (waiting.status, waiting.refund_no) == ("REFUNDING", "RF1")
    aftersales.retry_refund(uow, pending, case_id=case.id, actor="staff:8")  # stuck: the channel is asked again
    assert (pending.asked_again, len(pending.calls)) == (["RF1"], 1)
    with shop.uow:
        aftersales.refund_settled(shop.uow, case.id, refund_no="RF1", status=RefundStatus.SUCCESS, now=NOW)
        aftersales.refund_settled(shop.uow, case.id, refund_no="RF1", status=RefundStatus.SUCCESS, now=NOW)  # replay
    assert [step.status for step in case.history].count("REFUNDED") == 1


class DiesBeforeRefunding(FakeRefunder):
    """The process dies (or an unexpected error hits) after the case went REFUNDING, before its refund started."""

    def start(self, uow: OrderUnitOfWork, **_: object) -> str:  # type: ignore[override]
        raise RuntimeError("killed")


def stalled_case(shop: Shop) -> tuple[Order, aftersales.AfterSale]:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})
    with pytest.raises(RuntimeError):
        aftersales.decide(lambda: shop.uow, DiesBeforeRefunding(), case_id=case.id, approve=True, reason="ok",
                          actor="staff:8", now=NOW + timedelta(days=4))
    assert (case.status, shop.uow.refunds.for_order(order.id)) == ("REFUNDING", [])
    return order, case


def test_the_refund_job_starts_the_refund_of_a_case_left_refunding_without_one_once(shop: Shop) -> None:
    order, case = stalled_case(shop)
    for _ in range(2):
        refunds.reconcile_refunds(lambda: shop.uow, None, shop.members, now=NOW + timedelta(days=4, minutes=5))
    [refund] = shop.uow.refunds.for_order(order.id)
    assert (refund.refund_no, refund.amount_fen, refund.status, refund.actor) == (
        case.refund_no, 1999, "SUCCESS", "reconciliation")
    assert (case.status, shop.members.balance_refunds) == ("REFUNDED", {case.refund_no: 1999})


def test_a_case_left_refunding_whose_refund_cannot_start_is_refund_failed_for_staff_by_the_refund_job(
        shop: Shop) -> None:
    _, case = stalled_case(shop)
    refused = FakeRefunder(fail=Conflict("REFUND_EXCEEDS_PAID", "too much"))
    later = NOW + timedelta(days=5)
    assert aftersales.start_unstarted_refunds(lambda: shop.uow, refused, before=later, now=later) == 0
    assert (case.status, case.history[-1].actor, case.history[-1].reason) == (
        "REFUND_FAILED", "reconciliation", "REFUND_EXCEEDS_PAID: too much")


def abnormal_case(shop: Shop, payments: FakeRefundPayments) -> tuple[Order, aftersales.AfterSale]:
    """A refund-only case approved on a WeChat-paid order whose refund WeChat Pay reports ABNORMAL."""
    order = delivered(shop, (101, 1))
    order.pay_channel = "wechat"
    case = ask(shop, order, {order.lines[0].id: 1})
    payments.status = "ABNORMAL"
    engine = aftersales.EngineRefunder(payments, shop.members)
    aftersales.decide(lambda: shop.uow, engine, case_id=case.id, approve=True, reason="ok", actor="staff:8")
    return order, case


def test_an_abnormal_refund_holds_the_case_for_staff_who_retry_the_same_refund_until_it_is_paid(
        shop: Shop) -> None:
    payments = FakeRefundPayments()
    order, case = abnormal_case(shop, payments)
    assert (case.status, case.is_open, order.refunded_fen) == ("REFUND_ABNORMAL", True, 1999)
    engine = aftersales.EngineRefunder(payments, shop.members)
    uow = lambda: shop.uow  # noqa: E731
    for action in (lambda: aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id),
                   lambda: aftersales.decide(uow, engine, case_id=case.id, approve=False, reason="", actor="staff:8")):
        with pytest.raises(Conflict) as held:
            action()
        assert held.value.details["status"] == "REFUND_ABNORMAL"

    assert aftersales.retry_refund(uow, engine, case_id=case.id, actor="staff:8").status == "REFUND_ABNORMAL"
    payments.status = "PROCESSING"  # fixed at WeChat Pay
    assert aftersales.retry_refund(uow, engine, case_id=case.id, actor="staff:8").status == "REFUNDING"
    payments.status = "SUCCESS"
    done = aftersales.retry_refund(uow, engine, case_id=case.id, actor="staff:8")

    assert (done.status, list(payments.asked), order.refunded_fen) == ("REFUNDED", [done.refund_no], 1999)
    assert [step.status for step in done.history] == [
        "REQUESTED", "REFUNDING", "REFUND_ABNORMAL", "REFUNDING", "REFUNDED"]


def test_closing_the_abnormal_refund_fails_the_case_and_a_retry_then_starts_a_new_refund(shop: Shop) -> None:
    payments = FakeRefundPayments()
    order, case = abnormal_case(shop, payments)
    first = case.refund_no

    refunds.close_refund(shop.uow, payments, refund_no=first, reason="卡已注销", actor="staff:1", now=NOW)
    assert (case.status, order.refunded_fen) == ("REFUND_FAILED", 0)
    payments.status = "PROCESSING"
    again = aftersales.retry_refund(lambda: shop.uow, aftersales.EngineRefunder(payments, shop.members),
                                    case_id=case.id, actor="staff:8")

    assert (again.status, again.refund_no != first, order.refunded_fen) == ("REFUNDING", True, 1999)


def test_a_case_retry_whose_resend_answer_is_lost_is_refunding_again_and_its_refund_cannot_be_closed(
        shop: Shop) -> None:
    order, case = abnormal_case(shop, FakeRefundPayments())
    channel = LostAnswerRefunds(lost_sends=1)  # holds nothing under its number: it is sent again, the answer lost

    with pytest.raises(DomainError) as sent:
        aftersales.retry_refund(lambda: shop.uow, aftersales.EngineRefunder(channel, shop.members), case_id=case.id,
                                actor="staff:8")

    assert (case.status, order.refunded_fen, channel.sent) == ("REFUNDING", 1999, [case.refund_no])
    assert (sent.value.code, sent.value.details) == ("PAYMENT_CHANNEL_UNAVAILABLE",
                                                     {"refund_no": case.refund_no, "status": "PENDING"})
    with pytest.raises(Conflict) as in_flight:
        refunds.close_refund(shop.uow, channel, refund_no=case.refund_no, reason="卡已注销", actor="staff:1", now=NOW)
    assert in_flight.value.code == "REFUND_STATE_CONFLICT"
    assert (case.status, order.refunded_fen) == ("REFUNDING", 1999)


def test_the_queue_filters_by_status_type_order_and_time_and_shoppers_see_their_own(shop: Shop) -> None:
    mine = delivered(shop, (101, 1), (102, 1))
    theirs = delivered(shop, (102, 1), user_id=2, key="b")
    a = ask(shop, mine, {mine.lines[0].id: 1}, now=NOW + timedelta(days=3))
    ask(shop, mine, {mine.lines[1].id: 1}, kind="return_refund", now=NOW + timedelta(days=4))
    ask(shop, theirs, {theirs.lines[0].id: 1}, user_id=2, now=NOW + timedelta(days=5))
    search = lambda **kw: aftersales.search_cases(shop.uow, CaseSearch(**kw))  # noqa: E731
    assert search()[1] == 3 and search(user_id=1)[1] == 2
    assert [case.id for case in search(type="refund_only", order_no=mine.order_no)[0]] == [a.id]
    assert search(created_from=NOW + timedelta(days=4), created_to=NOW + timedelta(days=5))[1] == 1
    assert search(status="REJECTED")[1] == 0
    with pytest.raises(InvalidInput):
        search(status="NOPE")


def test_staff_may_give_up_on_a_failed_refund_which_frees_the_line(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})
    uow = lambda: shop.uow  # noqa: E731
    aftersales.decide(uow, FakeRefunder(settle=False), case_id=case.id, approve=True, reason="ok", actor="staff:8")
    closed = aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=False, reason="paid by hand",
                               actor="staff:8")
    assert [step.status for step in closed.history] == ["REQUESTED", "REFUNDING", "REFUND_FAILED", "REJECTED"]
    assert ask(shop, order, {order.lines[0].id: 1}).status == "REQUESTED"


def test_a_return_whose_parcel_holds_the_wrong_goods_is_rejected_with_no_restock_and_no_refund(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1}, kind="return_refund")
    refunder = FakeRefunder()
    uow = lambda: shop.uow  # noqa: E731
    aftersales.decide(uow, refunder, case_id=case.id, approve=True, reason="send it", actor="staff:8")
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="SF", tracking_no="R1")

    rejected = aftersales.decide(uow, refunder, case_id=case.id, approve=False, reason="an empty box came back",
                                 actor="staff:8")

    assert [(step.status, step.reason) for step in rejected.history][-2:] == [
        ("RETURN_SHIPPED", "SF R1"), ("REJECTED", "an empty box came back")]
    assert refunder.calls == [] and [e for e in shop.uow.published if e.event_type == "order-returned"] == []
    assert order.lines[0].refunded_quantity == 0 and not rejected.is_open


def test_a_received_return_whose_refund_failed_cannot_be_rejected_only_retried(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    line = order.lines[0].id or 0
    case = ask(shop, order, {line: 1}, kind="return_refund")
    uow = lambda: shop.uow  # noqa: E731
    aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=True, reason="send it", actor="staff:8")
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="SF", tracking_no="R1")
    failed = aftersales.receive_return(uow, FakeRefunder(settle=False), case_id=case.id, note="", actor="staff:9")
    assert failed.status == "REFUND_FAILED"

    with pytest.raises(Conflict) as kept:
        aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=False, reason="keep it", actor="staff:8")

    assert (kept.value.code, kept.value.details) == ("AFTER_SALE_GOODS_RECEIVED",
                                                     {"status": "REFUND_FAILED", "action": "reject"})
    with pytest.raises(Conflict) as busy:  # the line stays with this case: no second return of the same goods
        ask(shop, order, {line: 1}, kind="return_refund")
    assert busy.value.code == "AFTER_SALE_LINE_OPEN"
    refunder = FakeRefunder()
    done = aftersales.retry_refund(uow, refunder, case_id=case.id, actor="staff:8")
    assert (done.status, refunder.calls) == ("REFUNDED", [{"order_id": order.id, "lines": [(line, 1, 1999)],
                                                           "source": f"after_sale:{case.id}"}])
    assert [e.event_type for e in shop.uow.published].count("order-returned") == 1


def test_a_return_not_sent_back_within_the_return_days_is_closed_by_the_system_and_frees_its_line(
        shop: Shop) -> None:
    order = delivered(shop, (101, 1), (102, 1))
    first, second = (line.id or 0 for line in order.lines)
    uow = lambda: shop.uow  # noqa: E731
    approved_at = NOW + timedelta(days=4)
    late, sent = (ask(shop, order, {line: 1}, kind="return_refund") for line in (first, second))
    for case in (late, sent):
        aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=True, reason="send it", actor="staff:8",
                          now=approved_at)
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=sent.id, carrier="SF", tracking_no="R1",
                                      now=approved_at + timedelta(days=1))
    settings = AfterSaleSettings(return_ship_days=7)
    assert aftersales.expire_returns(shop.uow, settings, now=approved_at + timedelta(days=7, seconds=-1)) == 0

    assert aftersales.expire_returns(shop.uow, settings, now=approved_at + timedelta(days=7)) == 1

    closed = aftersales.get_case(shop.uow, user_id=None, case_id=late.id)
    assert (closed.status, closed.is_open, closed.history[-1].actor, closed.history[-1].reason) == (
        "WITHDRAWN", False, "system", "the goods were not sent back within 7 days of approval")
    assert aftersales.get_case(shop.uow, user_id=None, case_id=sent.id).status == "RETURN_SHIPPED"
    assert (order.refunded_fen, [line.refunded_quantity for line in order.lines]) == (0, [0, 0])
    assert [e.event_type for e in shop.uow.published if e.event_type in ("order-returned", "order-refunded")] == []
    assert ask(shop, order, {first: 1}, kind="return_refund").status == "REQUESTED"


def test_the_shopper_withdraws_a_requested_case_in_its_history_and_the_line_takes_a_new_case(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})

    withdrawn = aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id, reason="found the charger",
                                         now=NOW + timedelta(days=4))

    assert withdrawn.status == "WITHDRAWN" and not withdrawn.is_open
    assert [(step.status, step.actor, step.reason) for step in withdrawn.history] == [
        ("REQUESTED", "user:1", "broken"), ("WITHDRAWN", "user:1", "found the charger")]
    assert [line.open for line in withdrawn.lines] == [False]
    assert ask(shop, order, {order.lines[0].id: 1}).status == "REQUESTED"


def test_an_approved_return_not_sent_back_yet_may_be_withdrawn_and_a_withdrawn_case_cannot_be_decided(
        shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1}, kind="return_refund")
    refunder = FakeRefunder()
    aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=True, reason="send it", actor="staff:8")

    withdrawn = aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id)

    assert [(step.status, step.reason) for step in withdrawn.history][-2:] == [
        ("AWAITING_RETURN", "send it"), ("WITHDRAWN", "withdrawn by the shopper")]
    with pytest.raises(Conflict) as shipped_after:
        aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="SF", tracking_no="R1")
    assert shipped_after.value.details == {"status": "WITHDRAWN", "action": "ship_return"}
    with pytest.raises(Conflict) as again:
        aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id)
    assert again.value.details == {"status": "WITHDRAWN", "action": "withdraw"}
    assert refunder.calls == []


@pytest.mark.parametrize("reached", ["RETURN_SHIPPED", "REFUNDED", "REJECTED", "REFUND_FAILED", "REFUNDING"])
def test_a_case_whose_goods_or_money_moved_or_that_is_closed_cannot_be_withdrawn_409_with_its_status(
        shop: Shop, reached: str) -> None:
    order = delivered(shop, (101, 1))
    kind = "return_refund" if reached == "RETURN_SHIPPED" else "refund_only"
    case = ask(shop, order, {order.lines[0].id: 1}, kind=kind)
    refunder = FakeRefunder(settle={"REFUNDED": True, "REFUND_FAILED": False}.get(reached))
    aftersales.decide(lambda: shop.uow, refunder, case_id=case.id, approve=reached != "REJECTED", reason="",
                      actor="staff:8")
    if reached == "RETURN_SHIPPED":
        aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="SF", tracking_no="R1")
    assert aftersales.get_case(shop.uow, user_id=1, case_id=case.id).status == reached

    with pytest.raises(Conflict) as refused:
        aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id)

    assert (refused.value.code, refused.value.details) == (
        "AFTER_SALE_STATE_CONFLICT", {"status": reached, "action": "withdraw"})
    assert aftersales.get_case(shop.uow, user_id=1, case_id=case.id).history[-1].status == reached


def test_a_stranger_cannot_withdraw_a_case_it_is_not_found(shop: Shop) -> None:
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id: 1})

    with pytest.raises(NotFound) as stranger:
        aftersales.withdraw_case(shop.uow, user_id=2, case_id=case.id)

    assert stranger.value.code == "AFTER_SALE_NOT_FOUND"
    assert aftersales.get_case(shop.uow, user_id=1, case_id=case.id).status == "REQUESTED"


ACTIONS = sorted({action for _, action in aftersales.CASE_TRANSITIONS})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), max_size=12))
def test_any_walk_withdraws_only_from_requested_or_awaiting_return_and_closed_cases_hold_no_line(
        actions: list[str]) -> None:
    case = aftersales.AfterSale(case_no="AS1", order_id=1, order_no="O1", user_id=1, type="return_refund",
                                status="REQUESTED", reason="r", images=[], refund_fen=100, created_at=NOW,
                                updated_at=NOW, lines=[CaseLine(line_id=1, quantity=1, amount_fen=100)])
    for action in actions:
        before = case.status
        try:
            case.apply(action, actor="user:1", now=NOW)
        except Conflict as refused:
            assert refused.details == {"status": before, "action": action} and case.status == before
            continue
        if action == "withdraw":
            assert before in ("REQUESTED", "AWAITING_RETURN") and case.status == "WITHDRAWN"
        assert case.lines[0].open == case.is_open
        assert case.history[-1].status == case.status


# -- units paid 0 fen ----------------------------------------------------------------------------

CUPS = 5  # a category of its own: the coupon below is limited to it


def delivered_with_free_cups(shop: Shop) -> Order:
    """1 tea (1999) + 2 cups (2 x 3000), paid through WeChat Pay; a 6000 coupon of the cups' category covers
    them all, so the cups' paid share is 0 and the tea's its full price."""
    shop.catalog.put(103, price_fen=3000, category_id=CUPS)
    shop.stock.available[103] = 10
    shop.members.coupon_fen, shop.members.coupon_categories = 6000, (CUPS,)
    ids = tuple(service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity,
                                      now=NOW).item.id or 0 for sku_id, quantity in ((101, 1), (103, 2)))
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=ids, address_id=7, coupon_id=9), note="",
                                 idempotency_key="cups", request_fingerprint=b"cups", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S1", lines=None, actor="staff:7",
                       now=NOW)
    return service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=NOW + timedelta(days=2))


def test_returned_units_a_category_coupon_paid_for_entirely_are_refunded_0_fen_without_asking_wechat_pay(
        shop: Shop) -> None:
    order = delivered_with_free_cups(shop)
    tea, cups = (line.id or 0 for line in order.lines)
    assert (order.payable_fen, paid_shares(order)) == (1999, {tea: 1999, cups: 0})
    payments = FakeRefundPayments(status="SUCCESS")
    engine = aftersales.EngineRefunder(payments, shop.members)
    uow = lambda: shop.uow  # noqa: E731
    case = ask(shop, order, {cups: 0}, kind="return_refund")
    aftersales.decide(uow, engine, case_id=case.id, approve=True, reason="send it back", actor="staff:8")
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="ZTO", tracking_no="R1")

    done = aftersales.receive_return(uow, engine, case_id=case.id, note="intact", actor="staff:9")

    assert (done.status, done.refund_fen, done.is_open) == ("REFUNDED", 0, False)
    assert [(step.status, step.reason) for step in done.history[-2:]] == [
        ("REFUNDING", "intact"), ("REFUNDED", "nothing to refund (0 fen paid for these units)")]
    [refund] = shop.uow.refunds.for_order(order.id or 0)
    assert (refund.refund_no, refund.status, refund.amount_fen, refund.channel) == (
        done.refund_no, "SUCCESS", 0, "none")
    assert (payments.asked, order.refunded_fen, order.lines[1].refunded_quantity) == ({}, 0, 2)
    # The goods are restocked by order-returned; no money moved, so there is no order-refunded.
    assert [event.event_type for event in shop.uow.published][-1:] == ["order-returned"]
    # The tea is still refunded exactly what was paid for it.
    tea_case = ask(shop, order, {tea: 1})
    assert aftersales.decide(uow, engine, case_id=tea_case.id, approve=True, reason="ok",
                             actor="staff:8").status == "REFUNDED"
    assert ([refund.amount_fen for refund in shop.uow.refunds.for_order(order.id or 0)], order.refunded_fen) == (
        [0, 1999], 1999)
    assert [event.payload.amount_fen for event in shop.uow.published if event.event_type == "order-refunded"] == [
        1999]


def test_a_refund_only_case_of_an_order_paid_0_fen_is_refunded_at_once_with_nothing_paid_back(shop: Shop) -> None:
    shop.members.coupon_fen = 5000  # covers 1999 + 500 entirely
    ids = tuple(service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=1,
                                      now=NOW).item.id or 0 for sku_id in (101, 102))
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=ids, address_id=7, coupon_id=9), note="",
                                 idempotency_key="free", request_fingerprint=b"free", now=NOW)
    service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                      channel="balance", now=NOW)
    assert (order.status, order.payable_fen, order.pay_channel) == ("PAID", 0, "none")
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S1", lines=None, actor="staff:7",
                       now=NOW)
    case = ask(shop, order, {order.lines[0].id: 1})

    done = aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(None, shop.members), case_id=case.id,
                             approve=True, reason="ok", actor="staff:8")

    assert (done.status, done.refund_fen, done.history[-1].reason) == (
        "REFUNDED", 0, "nothing to refund (0 fen paid for these units)")
    [refund] = shop.uow.refunds.for_order(order.id or 0)
    assert (refund.status, refund.amount_fen, shop.members.balance_refunds, order.status) == (
        "SUCCESS", 0, {}, "SHIPPED")
    assert "order-refunded" not in [event.event_type for event in shop.uow.published]


def test_a_case_naming_a_line_twice_over_grpc_is_refused_line_repeated_and_nothing_is_opened(shop: Shop) -> None:
    # The gateway refuses it (CaseIn); a direct caller used to have the two quantities added up into one claim.
    order = paid_order(shop, (101, 2))
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S1", lines=None, actor="staff:7",
                       now=NOW)
    line = order.lines[0].id or 0
    servicer = AfterSaleServicer(lambda: shop.uow, FakeRefunder(), SETTINGS)
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t"))
    try:
        with pytest.raises(InvalidInput) as repeated:
            servicer.CreateAfterSale(after_sale_pb2.CreateAfterSaleRequest(
                order_id=order.id, type="refund_only", reason="broken", lines=[
                    after_sale_pb2.AfterSaleLine(line_id=line, quantity=1),
                    after_sale_pb2.AfterSaleLine(line_id=line, quantity=1)]), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (repeated.value.code, repeated.value.details) == ("LINE_REPEATED", {"lines": [line]})
    assert aftersales.search_cases(shop.uow, CaseSearch(user_id=1)) == ([], 0)
