"""The refund job starts the refund of an after-sales case left REFUNDING with none (the process died, or an unexpected
error hit, between the step's commit and the refund's reservation), once, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from services.order import aftersales, refunds, service
from services.order.aftersales import AfterSaleSettings, CaseRequest
from services.order.db import SqlOrderUnitOfWork
from tests.fakes import FakeMembers
from tests.integration.order.test_aftersales_db import IMAGE, NOW, shipped
from tests.integration.order.test_order_grpc import ALICE

pytestmark = pytest.mark.integration

SETTLE = 300


class Killed(BaseException):
    """SIGKILL stand-in: nothing after it runs."""


class DiesBeforeStart(aftersales.EngineRefunder):
    def start(self, *args: object, **kwargs: object) -> str:
        raise Killed()


class DatabaseBlipBeforeStart(aftersales.EngineRefunder):
    def start(self, *args: object, **kwargs: object) -> str:
        raise OperationalError("INSERT INTO refunds", {}, Exception("server closed the connection"))


def open_case(uow: Callable[[], SqlOrderUnitOfWork], order_no: str, kind: str) -> tuple[int, int]:
    order_id = shipped(uow, order_no)
    line_id = service.get_order(uow(), user_id=ALICE, order_id=order_id).lines[0].id or 0
    case = aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=NOW + timedelta(days=1),
                                request=CaseRequest(order_id=order_id, type=kind, lines={line_id: 1}, reason="坏了",
                                                    images=(IMAGE,)))
    return order_id, case.id or 0


def refunded(uow: Callable[[], SqlOrderUnitOfWork], order_id: int) -> tuple[list[tuple[str, int, str]], int]:
    with uow() as tx:
        rows = [(refund.refund_no, refund.amount_fen, refund.status) for refund in tx.refunds.for_order(order_id)]
        refunded_fen = tx.orders.get(order_id).refunded_fen  # type: ignore[union-attr]
        tx.commit()
    return rows, refunded_fen


def test_an_approved_case_whose_process_died_before_its_refund_is_refunded_once_by_the_refund_job(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id, case_id = open_case(uow, "AS-SWEEP-1", "refund_only")
    members = FakeMembers()
    approved = NOW + timedelta(days=2)
    with pytest.raises(Killed):
        aftersales.decide(uow, DiesBeforeStart(None, members), case_id=case_id, approve=True, reason="ok",
                          actor="staff:8", now=approved)
    stuck = aftersales.get_case(uow(), user_id=None, case_id=case_id)
    assert stuck.status == "REFUNDING" and refunded(uow, order_id) == ([], 0)

    refunds.reconcile_refunds(uow, None, members, now=approved + timedelta(seconds=SETTLE - 1), settle_seconds=SETTLE)
    assert refunded(uow, order_id) == ([], 0)  # the request may still be starting it
    for _ in range(2):
        refunds.reconcile_refunds(uow, None, members, now=approved + timedelta(seconds=SETTLE),
                                  settle_seconds=SETTLE)

    done = aftersales.get_case(uow(), user_id=None, case_id=case_id)
    assert refunded(uow, order_id) == ([(stuck.refund_no, 1000, "SUCCESS")], 1000)
    assert members.balance_refunds == {stuck.refund_no: 1000}
    assert (done.status, done.refund_no) == ("REFUNDED", stuck.refund_no)


def test_a_received_return_whose_refund_hit_a_database_error_is_refunded_once_by_the_refund_job(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id, case_id = open_case(uow, "AS-SWEEP-2", "return_refund")
    members = FakeMembers()
    engine = aftersales.EngineRefunder(None, members)
    aftersales.decide(uow, engine, case_id=case_id, approve=True, reason="ok", actor="staff:8",
                      now=NOW + timedelta(days=2))
    aftersales.submit_return_shipment(uow(), user_id=ALICE, case_id=case_id, carrier="SF", tracking_no="R1",
                                      now=NOW + timedelta(days=3))
    received = NOW + timedelta(days=4)
    with pytest.raises(OperationalError):
        aftersales.receive_return(uow, DatabaseBlipBeforeStart(None, members), case_id=case_id, note="ok",
                                  actor="staff:8", now=received)
    stuck = aftersales.get_case(uow(), user_id=None, case_id=case_id)
    assert stuck.status == "REFUNDING"

    for _ in range(2):
        refunds.reconcile_refunds(uow, None, members, now=received + timedelta(hours=1), settle_seconds=SETTLE)

    done = aftersales.get_case(uow(), user_id=None, case_id=case_id)
    assert refunded(uow, order_id) == ([(stuck.refund_no, 1000, "SUCCESS")], 1000)
    assert members.balance_refunds == {stuck.refund_no: 1000}
    assert done.status == "REFUNDED"
