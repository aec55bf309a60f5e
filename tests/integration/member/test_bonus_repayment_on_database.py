"""Spent bonus a withdrawal repaid (kept from its transfer), then refunded, on PostgreSQL: the refund gives it back as
cash, and a refund and the withdrawal's give-back at the same moment end as if in either order, because each reads
what is repaid under the wallet's locks, after its own first posting took them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.channels import SimulatedPayout
from services.member.db import SqlMemberUnitOfWork
from tests.integration.member.test_balance_payment_void_on_database import first_then_second
from tests.integration.member.test_withdrawal_give_back_races_on_database import (
    ALICE,
    BONUS,
    FINANCE,
    NOW,
    RECHARGE,
    approve_in_flight,
    balances,
    give_back,
    recharged_and_withdrawing,
)

pytestmark = pytest.mark.integration


def refund(work: SqlMemberUnitOfWork) -> int:
    """Order O1, paid wholly by the bonus, refunded: the available balance after."""
    return service.refund_to_balance(work, user_id=ALICE, refund_no="RF-O1", order_no="O1", amount_fen=BONUS, now=NOW)


def test_a_refund_of_bonus_a_paid_withdrawal_repaid_comes_back_as_cash_and_withdraws_whole(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)  # 500 yuan asked for, 50 kept: the bonus was spent
    first = service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=first_id, approve=True, note="",
                                      decided_by=FINANCE, now=NOW)
    refunded = [refund(uow()) for _ in range(2)]  # a replay changes nothing

    rest = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=BONUS, idempotency_key="w2", now=NOW)
    rest = service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=rest.id or 0, approve=True, note="",
                                     decided_by=FINANCE, now=NOW)

    assert (first.status, first.payout_fen, refunded) == ("PAID", RECHARGE - BONUS, [BONUS, BONUS])
    assert (rest.status, rest.bonus_forfeited_fen, rest.payout_fen) == ("PAID", 0, BONUS)
    assert balances(uow) == (0, 0, 0, 0)  # (available, pending, bonus, promotions): 500 yuan in, 500 out


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
@pytest.mark.parametrize("refund_first", [True, False])
def test_a_refund_and_the_give_back_of_the_withdrawal_that_repaid_its_bonus_end_as_if_one_came_first(
        how: str, refund_first: bool, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Refund first: it gives the bonus back as cash (repaid), which the give-back then takes back as bonus. Give-back
    first: nothing is repaid any more, and the refund gives the bonus back as bonus. Either way the shopper ends with
    the recharge and its bonus, as if the order had been refunded and the withdrawal never asked for."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    if how == "FAILED":
        approve_in_flight(first_id, uow)

    def given_back(work: SqlMemberUnitOfWork) -> object:
        return give_back(how, first_id, work, uow)

    results = (first_then_second(engine, uow, refund, given_back) if refund_first
               else first_then_second(engine, uow, given_back, refund)[::-1])

    assert results == ((BONUS, how.upper()) if refund_first else (RECHARGE, how.upper()))
    assert balances(uow) == (RECHARGE, 0, BONUS, -BONUS)  # the bonus is the shopper's again
