"""Recharges and withdrawals are counted once each is committed: not per replay, not when refused."""

from __future__ import annotations

import pytest

from services.common.errors import Conflict, DomainError
from services.member import service
from tests.fakes import SimulatedPayment, SimulatedPayout
from tests.fixtures.metrics import CounterDeltas
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import ALICE, NOW, balances, fund, uow  # noqa: F401  (uow is a fixture)


def test_a_recharge_counts_once_with_its_amount_when_credited(uow: FakeMemberUnitOfWork) -> None:  # noqa: F811
    recharge, _ = service.create_recharge(uow, SimulatedPayment(), user_id=ALICE, amount_fen=5_000, channel="alipay",
                                          idempotency_key="r1", now=NOW)
    deltas = CounterDeltas()
    with pytest.raises(DomainError) as refused:  # another amount: not credited
        service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=4_999, channel_txn_id="T1", now=NOW)
    assert (refused.value.code, balances(uow, ALICE)) == ("RECHARGE_AMOUNT_MISMATCH", (0, 0))
    for _ in range(3):  # the notify, replayed
        service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=5_000, channel_txn_id="T1", now=NOW)

    assert deltas() == {'mall_recharges_total{channel="alipay"}': 1, 'mall_recharged_fen_total{channel="alipay"}': 5_000}


def test_withdrawals_count_requests_once_per_key_then_each_decision_once(uow: FakeMemberUnitOfWork) -> None:  # noqa: F811
    fund(uow, ALICE, 20_000)
    deltas = CounterDeltas()
    paid = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)
    service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="k1", now=NOW)  # a replay
    rejected = service.request_withdrawal(uow, user_id=ALICE, amount_fen=3_000, idempotency_key="k2", now=NOW)
    with pytest.raises(DomainError) as refused:  # more than is left: refused, not requested
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=50_000, idempotency_key="k3", now=NOW)
    assert (refused.value.code, balances(uow, ALICE)) == ("INSUFFICIENT_BALANCE", (11_000, 9_000))
    for _ in range(2):
        service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=paid.id or 0, approve=True, note="",
                                  decided_by=9, now=NOW)
    service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=rejected.id or 0, approve=False, note="",
                              decided_by=9, now=NOW)
    with pytest.raises(Conflict) as decided:
        service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=rejected.id or 0, approve=True, note="",
                                  decided_by=9, now=NOW)
    assert (decided.value.code, balances(uow, ALICE)) == ("WITHDRAWAL_ALREADY_DECIDED", (14_000, 0))  # 6,000 paid out, 3,000 given back

    assert deltas() == {'mall_withdrawals_total{outcome="requested"}': 2, 'mall_withdrawals_total{outcome="paid"}': 1,
                        'mall_withdrawals_total{outcome="rejected"}': 1, "mall_withdrawn_fen_total": 6_000}
