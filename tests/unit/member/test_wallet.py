"""get_wallet: any shopper's wallet, member or not, the same numbers a member's account shows."""

from __future__ import annotations

from services.member import service
from services.member.domain import PLATFORM, Account, Wallet, transfer
from tests.fakes import SimulatedPayment
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import ALICE, BOB, NOW


def test_a_shopper_who_never_joined_reads_the_recharge_credited_to_them() -> None:
    uow = FakeMemberUnitOfWork()
    recharge, _ = service.create_recharge(uow, SimulatedPayment(), user_id=ALICE, amount_fen=10_000, channel="wechat",
                                          idempotency_key="r-1", now=NOW)
    service.credit_recharge(uow, recharge_no=recharge.recharge_no, paid_fen=10_000, channel_txn_id="T1",
                            channel="wechat", now=NOW)

    assert (uow.members.get(ALICE), service.get_wallet(uow, user_id=ALICE)) == (
        None, Wallet(balance_fen=10_000, pending_fen=0, bonus_fen=0))


def test_a_shopper_with_no_wallet_movement_yet_reads_zeros() -> None:
    assert service.get_wallet(FakeMemberUnitOfWork(), user_id=BOB) == Wallet(balance_fen=0, pending_fen=0, bonus_fen=0)


def test_a_member_reads_the_balances_their_account_shows() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    for account, amount in ((Account.AVAILABLE, 7_000), (Account.PENDING, 3_000), (Account.BONUS, 800)):
        uow.ledger.post(transfer(f"seed:{account}", "recharge", "seed", amount=amount,
                                 source=(PLATFORM, Account.CLEARING), target=(ALICE, account)), NOW)

    summary = service.get_member(uow, user_id=ALICE, now=NOW)

    assert service.get_wallet(uow, user_id=ALICE) == Wallet(
        balance_fen=summary.balance_fen, pending_fen=summary.pending_fen, bonus_fen=summary.bonus_fen) == Wallet(
        balance_fen=7_000, pending_fen=3_000, bonus_fen=800)
