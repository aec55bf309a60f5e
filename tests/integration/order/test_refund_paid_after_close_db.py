"""A closed after-sales refund WeChat Pay pays after all, on the order service's databases: stored as paid
(`paid_after_close_at`, migration 0017), its amounts reserved again all or nothing, its units no longer claimable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.order_events_pb2 import RefundPaidTwice
from sqlalchemy import select

from services.common.errors import Conflict
from services.common.events import decode, unpack
from services.common.order_steps import StepKind
from services.common.outbox import outbox
from services.order import aftersales, db, refunds, service
from services.order.aftersales import AfterSaleSettings, CaseRequest
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, RefundStatus
from tests.fakes import FakeMembers, FakeRefundPayments
from tests.fixtures.postgres import start_thread
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

Uow = Callable[[], SqlOrderUnitOfWork]
IMAGE = "/media/uploads/" + "c" * 32 + ".png"


def shipped(uow: Uow, order_no: str, *lines: OrderLine) -> tuple[int, list[int]]:
    order_id = paid(uow, order_no, *lines)
    service.ship_order(uow(), order_id=order_id, carrier="SF", tracking_no=order_no, lines=None, actor="staff:7",
                       now=datetime.now(UTC))
    return order_id, [line.id or 0 for line in service.get_order(uow(), user_id=None, order_id=order_id).lines]


def ask(uow: Uow, order_id: int, lines: dict[int, int]) -> aftersales.AfterSale:
    return aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=datetime.now(UTC) + timedelta(hours=1),
                                request=CaseRequest(order_id=order_id, type="refund_only", lines=lines, reason="坏了",
                                                    images=(IMAGE,)))


def decide(uow: Uow, payments: FakeRefundPayments, case: aftersales.AfterSale, *, approve: bool) -> aftersales.AfterSale:
    return aftersales.decide(uow, aftersales.EngineRefunder(payments, FakeMembers()), case_id=case.id or 0,
                             approve=approve, reason="ok" if approve else "no", actor="staff:8")


def closed_case(uow: Uow, payments: FakeRefundPayments, order_id: int, lines: dict[int, int]) -> aftersales.AfterSale:
    case = ask(uow, order_id, lines)
    payments.status = "ABNORMAL"
    case = decide(uow, payments, case, approve=True)
    refunds.close_refund(uow(), payments, refund_no=case.refund_no, reason="卡已注销", actor="staff:1",
                         now=datetime.now(UTC))
    payments.status = "PROCESSING"
    return aftersales.get_case(uow(), user_id=None, case_id=case.id or 0)


def paid_after_all(uow: Uow, payments: FakeRefundPayments, refund_no: str) -> None:
    payments.notice = replace(payments.asked[refund_no], status="SUCCESS")
    for _ in range(2):
        refunds.handle_refund_notify(uow(), payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")


def amounts(uow: Uow, order_id: int) -> tuple[int, list[tuple[int, int]]]:
    order = service.get_order(uow(), user_id=None, order_id=order_id)
    return order.refunded_fen, [(line.refunded_quantity, line.refunded_fen) for line in order.lines]


def stored(uow: Uow, refund_no: str) -> tuple[str, bool]:
    with uow() as tx:
        status, at = tx.session.execute(select(db.refunds.c.status, db.refunds.c.paid_after_close_at)
                                        .where(db.refunds.c.refund_no == refund_no)).one()
    return status, at is not None


def refunded_events(uow: Uow) -> int:
    with uow() as tx:
        return len(tx.session.execute(select(outbox.c.id).where(outbox.c.event_type == "order-refunded")).all())


def paid_twice_events(uow: Uow) -> list[tuple[str, int]]:
    """The refund-paid-twice events in the outbox: (refund_no, amount_fen)."""
    with uow() as tx:
        envelopes = tx.session.execute(select(outbox.c.envelope).where(
            outbox.c.event_type == "refund-paid-twice")).scalars().all()
    return [(e.refund_no, e.amount_fen) for e in (unpack(decode(bytes(raw)), RefundPaidTwice) for raw in envelopes)]


def test_its_units_count_as_refunded_again_and_a_case_opened_on_them_meanwhile_is_not_approved(uow: Uow) -> None:
    payments = FakeRefundPayments()
    order_id, [line] = shipped(uow, "PAC-1", OrderLine(101, 10, "茶", "", 1000, 3))
    first = closed_case(uow, payments, order_id, {line: 2})
    decide(uow, payments, first, approve=False)
    second = ask(uow, order_id, {line: 2})

    paid_after_all(uow, payments, first.refund_no)

    assert (stored(uow, first.refund_no), amounts(uow, order_id), refunded_events(uow)) == (
        ("CLOSED", True), (2000, [(2, 2000)]), 1)
    with pytest.raises(Conflict) as refused:
        decide(uow, payments, second, approve=True)
    assert (refused.value.code, refused.value.details) == ("AFTER_SALE_QUANTITY_INVALID", {"line_id": line, "left": 1})
    assert (aftersales.get_case(uow(), user_id=None, case_id=second.id or 0).status, list(payments.asked)) == (
        "REQUESTED", [first.refund_no])


def test_amounts_that_no_longer_fit_are_not_reserved_in_part(uow: Uow) -> None:
    payments = FakeRefundPayments()
    order_id, [tea, cup] = shipped(uow, "PAC-2", OrderLine(101, 10, "茶", "", 1000, 3),
                                   OrderLine(102, 10, "杯", "", 1000, 1))
    case = closed_case(uow, payments, order_id, {tea: 2})
    payments.status = "SUCCESS"
    again = aftersales.retry_refund(uow, aftersales.EngineRefunder(payments, FakeMembers()), case_id=case.id or 0,
                                    actor="staff:8")
    assert (again.status, amounts(uow, order_id)) == ("REFUNDED", (2000, [(2, 2000), (0, 0)]))

    # the order's 4000 fen would take 2000 more, the tea line's 3 units not 2 more: nothing is reserved
    paid_after_all(uow, payments, case.refund_no)

    assert (stored(uow, case.refund_no), amounts(uow, order_id), refunded_events(uow)) == (
        ("CLOSED", True), (2000, [(2, 2000), (0, 0)]), 1)
    assert paid_twice_events(uow) == [(case.refund_no, 2000)]  # out twice, published once (notified twice)
    with pytest.raises(Conflict) as nothing_left:
        ask(uow, order_id, {tea: 1})
    assert nothing_left.value.details == {"line_id": tea, "left": 0}
    assert ask(uow, order_id, {cup: 1}).refund_fen == 1000


def test_a_retried_refund_closing_after_the_closed_one_was_paid_leaves_the_case_refunded_by_that_one(
        uow: Uow) -> None:
    payments = FakeRefundPayments()
    order_id, [line] = shipped(uow, "PAC-3", OrderLine(101, 10, "茶", "", 1000, 3))
    case = closed_case(uow, payments, order_id, {line: 3})
    again = aftersales.retry_refund(uow, aftersales.EngineRefunder(payments, FakeMembers()), case_id=case.id or 0,
                                    actor="staff:8")
    paid_after_all(uow, payments, case.refund_no)  # waits: the retried refund holds its 3000 fen

    refunds.settle_refund(uow(), refund_no=again.refund_no, status=RefundStatus.CLOSED, actor="wechatpay")

    done = aftersales.get_case(uow(), user_id=None, case_id=case.id or 0)
    assert (done.status, done.refund_no, amounts(uow, order_id), refunded_events(uow)) == (
        "REFUNDED", case.refund_no, (3000, [(3, 3000)]), 1)


def noted_by_an_old_pod(uow: Uow, order_id: int, refund_no: str, at: datetime) -> None:
    """What a pod of the release before 0017 writes when it hears WeChat Pay pay a closed refund, after 0017's backfill
    ran: the order's history step only, no paid_after_close_at."""
    with uow() as tx:
        order = tx.orders.get(order_id, lock=True)
        refund = tx.refunds.get(refund_no)
        assert order is not None and refund is not None
        order.record_step(kind=StepKind.REFUND_NOTE, actor="wechatpay", now=at,
                          reason=refunds.paid_after_close_note(refund), shopper=False)
        tx.commit()


def marked_at(uow: Uow, refund_no: str) -> tuple[str, datetime | None]:
    with uow() as tx:
        return tuple(tx.session.execute(select(db.refunds.c.status, db.refunds.c.paid_after_close_at)
                                        .where(db.refunds.c.refund_no == refund_no)).one())


def steps(uow: Uow, order_id: int) -> list[str]:
    return [step.reason for step in service.get_order(uow(), user_id=None, order_id=order_id).history]


def test_the_refund_round_marks_a_closed_refund_an_old_pod_recorded_paid_at_its_step_once(uow: Uow) -> None:
    """No notify comes again for it: the refund job's round marks it as 0017's backfill would (the step's time), its
    failed case is refunded by it and its units are no longer claimable; nothing is counted or reserved again. A closed
    refund with no such step is left as it is, and the next round finds nothing to do."""
    payments = FakeRefundPayments()
    order_id, [line] = shipped(uow, "PAC-3", OrderLine(101, 10, "茶", "", 1000, 3))
    noted = closed_case(uow, payments, order_id, {line: 2})
    unpaid_order, [cup] = shipped(uow, "PAC-4", OrderLine(102, 10, "杯", "", 500, 2))
    unpaid = closed_case(uow, payments, unpaid_order, {cup: 1})
    noted_at = datetime(2026, 12, 6, 9, 30, 15, tzinfo=UTC)
    noted_by_an_old_pod(uow, order_id, noted.refund_no, noted_at)
    noted_by_an_old_pod(uow, order_id, noted.refund_no, noted_at + timedelta(minutes=5))  # a replay to an old pod
    before = steps(uow, order_id)
    assert (noted.status, marked_at(uow, noted.refund_no)) == ("REFUND_FAILED", ("CLOSED", None))
    later = datetime.now(UTC) + timedelta(hours=2)

    for _ in range(2):  # the next round finds nothing left to mark
        assert refunds.reconcile_refunds(uow, payments, FakeMembers(), now=later) == 0

    assert marked_at(uow, noted.refund_no) == ("CLOSED", noted_at)
    assert marked_at(uow, unpaid.refund_no) == ("CLOSED", None)
    case = aftersales.get_case(uow(), user_id=None, case_id=noted.id or 0)
    assert (case.status, case.refund_no, case.history[-1].actor) == ("REFUNDED", noted.refund_no,
                                                                     f"refund:{noted.refund_no}")
    assert [step.status for step in case.history].count("REFUNDED") == 1
    assert (amounts(uow, order_id), refunded_events(uow), steps(uow, order_id)) == ((0, [(0, 0)]), 0, before)
    with pytest.raises(Conflict) as claimed:
        ask(uow, order_id, {line: 2})
    assert claimed.value.details == {"line_id": line, "left": 1}
    with uow() as tx:  # the other closed refund's units were never paid: still claimable
        order = tx.orders.get(unpaid_order)
        assert order is not None
        assert aftersales.claimable_units(order, tx.refunds.for_order(unpaid_order)) == {cup: 2}


def test_the_refund_round_looks_back_only_so_far_for_closed_refunds_an_old_pod_recorded(uow: Uow) -> None:
    """The round reads the CLOSED refunds of the last NOTED_DAYS only (an index range, not every CLOSED refund ever,
    each round): an older one is left to the README's SQL check."""
    payments = FakeRefundPayments()
    order_id, [line] = shipped(uow, "PAC-6", OrderLine(101, 10, "茶", "", 1000, 3))
    noted = closed_case(uow, payments, order_id, {line: 2})
    noted_by_an_old_pod(uow, order_id, noted.refund_no, datetime(2026, 12, 6, 9, 30, 15, tzinfo=UTC))
    too_late = datetime.now(UTC) + timedelta(days=refunds.NOTED_DAYS, hours=1)

    refunds.reconcile_refunds(uow, payments, FakeMembers(), now=too_late)
    assert marked_at(uow, noted.refund_no) == ("CLOSED", None)
    refunds.reconcile_refunds(uow, payments, FakeMembers(), now=too_late - timedelta(days=1))
    assert marked_at(uow, noted.refund_no)[1] is not None


def test_replicas_marking_the_same_refund_at_once_mark_it_once(pg_uow: Uow) -> None:
    payments = FakeRefundPayments()
    order_id, [line] = shipped(pg_uow, "PAC-5", OrderLine(101, 10, "茶", "", 1000, 3))
    noted = closed_case(pg_uow, payments, order_id, {line: 2})
    noted_at = datetime(2026, 12, 6, 9, 30, 15, tzinfo=UTC)
    noted_by_an_old_pod(pg_uow, order_id, noted.refund_no, noted_at)
    results: dict[str, object] = {}

    threads = [start_thread(results, str(replica), lambda: refunds.mark_noted_refund(pg_uow(), noted.refund_no,
                                                                                      datetime.now(UTC)))
               for replica in range(4)]
    for thread in threads:
        thread.join()

    assert sorted(results.values()) == [0, 0, 0, 1]
    assert marked_at(pg_uow, noted.refund_no) == ("CLOSED", noted_at)
    case = aftersales.get_case(pg_uow(), user_id=None, case_id=noted.id or 0)
    assert [step.status for step in case.history].count("REFUNDED") == 1
