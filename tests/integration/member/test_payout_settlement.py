"""Withdrawal payouts through the simulator's WeChat Pay merchant transfer, on PostgreSQL: a transfer still in
flight (awaiting the shopper's confirmation, as WeChat Pay answers), or whose answer was lost, is asked about again
by settle_payouts until it ends; success pays the withdrawal with one `member-withdrawn`, failure gives the amount
back, each exactly once, however many replicas settle at the same time."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from services.common.db import utcnow
from services.common.errors import Conflict
from services.common.outbox import outbox
from services.common.wechatpay import WechatPay
from services.member import service
from services.member.channels import Payout, PayoutChannel, WechatTransferPayout
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from tests.fixtures.simulator import RunningSimulator

pytestmark = pytest.mark.integration

USER, FINANCE = 5151, 900


class Payers:
    def __init__(self, openid: str) -> None:
        self.openid = openid

    def payer_openid(self, user_id: int) -> str:
        return self.openid if user_id == USER else ""


class Withdrawing:
    """A shopper with 10,000 fen asking to withdraw 6,000, finance approving, replicas settling payouts."""

    def __init__(self, uow: Callable[[], SqlMemberUnitOfWork], simulator: RunningSimulator, engine: Engine) -> None:
        self.uow, self.sim, self.engine = uow, simulator.client, engine
        self.openid = f"o-payout-{uuid.uuid4().hex[:10]}"
        self.payout = WechatTransferPayout(WechatPay(simulator.wechatpay_settings()), Payers(self.openid))
        with uow() as tx:
            tx.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                                    target=(USER, Account.AVAILABLE)), utcnow())
            tx.commit()
        self.withdrawal = service.request_withdrawal(uow(), user_id=USER, amount_fen=6_000, idempotency_key="k")
        self.no = self.withdrawal.withdrawal_no

    def approve(self) -> str:
        return service.decide_withdrawal(self.uow(), self.payout, withdrawal_id=self.withdrawal.id or 0, approve=True,
                                         note="ok", decided_by=FINANCE).status

    def settle(self) -> int:
        return service.settle_payouts(self.uow, self.payout, now=utcnow() + timedelta(minutes=2))

    def settle_on_replicas(self, replicas: int = 3) -> list[int]:
        barrier, ended = threading.Barrier(replicas), []

        def replica() -> None:
            barrier.wait()
            ended.append(self.settle())

        threads = [threading.Thread(target=replica) for _ in range(replicas)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ended

    def state(self) -> tuple[str, int, int, int, int]:
        """(status, available, pending, platform clearing, member-withdrawn events)."""
        with self.uow() as tx:
            withdrawal = tx.withdrawals.get(self.withdrawal.id or 0)
            assert withdrawal is not None
            numbers = (withdrawal.status, tx.ledger.balance(USER, Account.AVAILABLE),
                       tx.ledger.balance(USER, Account.PENDING), tx.ledger.balance(PLATFORM, Account.CLEARING))
            tx.commit()
        with self.engine.connect() as connection:
            events = connection.execute(select(func.count()).select_from(outbox).where(
                outbox.c.event_type == "member-withdrawn", outbox.c.aggregate_id == str(USER))).scalar_one()
        return (*numbers, events)

    def confirm(self) -> str:
        """The shopper confirms the transfer with the package the withdrawal holds for them; that package."""
        with self.uow() as tx:
            withdrawal = tx.withdrawals.get(self.withdrawal.id or 0)
            assert withdrawal is not None and withdrawal.payout_confirm is not None
            package = withdrawal.payout_confirm["package"]
            tx.commit()
        self.sim.wechatpay_transfer_confirm(self.no, package)
        return package

    def transfers(self) -> list[tuple[str, int, str]]:
        return [(t["out_bill_no"], t["transfer_amount"], t["state"]) for t in self.sim.wechatpay_transfers(self.openid)]


@pytest.fixture
def withdrawing(uow: Callable[[], SqlMemberUnitOfWork], simulator: RunningSimulator, engine: Engine) -> Withdrawing:
    return Withdrawing(uow, simulator, engine)


def test_a_transfer_still_processing_is_paid_once_when_it_succeeds(withdrawing: Withdrawing) -> None:
    withdrawing.sim.wechatpay_transfer_next(state="PROCESSING")
    approved = withdrawing.approve()
    paying, still_processing = withdrawing.state(), withdrawing.settle()
    withdrawing.sim.wechatpay_transfer_settle(withdrawing.no, "SUCCESS")

    ended = withdrawing.settle_on_replicas()
    replayed = (withdrawing.settle(), withdrawing.approve())

    assert (approved, paying, still_processing) == ("PAYING", ("PAYING", 4_000, 6_000, -10_000, 0), 0)
    assert (sorted(ended), replayed) == ([0, 0, 1], (0, "PAID"))
    assert withdrawing.state() == ("PAID", 4_000, 0, -4_000, 1)
    assert withdrawing.transfers() == [(withdrawing.no, 6_000, "SUCCESS")]


def test_a_transfer_whose_answer_was_lost_is_asked_about_and_paid_once_the_shopper_confirms_it(
        withdrawing: Withdrawing) -> None:
    withdrawing.sim.wechatpay_transfer_next(lose_answer=True)
    approved, paying = withdrawing.approve(), withdrawing.state()
    waiting = [withdrawing.settle(), withdrawing.settle()]  # the bill query brings no package: the bill sent again
    confirm = withdrawing.confirm()

    ended = [withdrawing.settle(), withdrawing.settle()]

    assert (approved, paying, waiting) == ("PAYING", ("PAYING", 4_000, 6_000, -10_000, 0), [0, 0])
    assert confirm  # the package the re-sent bill was answered with, which the simulator took as the bill's
    assert ended == [1, 0]
    assert withdrawing.state() == ("PAID", 4_000, 0, -4_000, 1)
    assert withdrawing.transfers() == [(withdrawing.no, 6_000, "SUCCESS")]  # never a second transfer


def test_a_transfer_that_fails_in_flight_gives_the_amount_back_once(withdrawing: Withdrawing) -> None:
    withdrawing.sim.wechatpay_transfer_next(state="PROCESSING")
    withdrawing.approve()
    withdrawing.sim.wechatpay_transfer_settle(withdrawing.no, "FAIL")

    ended = withdrawing.settle_on_replicas() + [withdrawing.settle()]

    assert sorted(ended) == [0, 0, 0, 1]
    assert withdrawing.state() == ("FAILED", 10_000, 0, -10_000, 0)
    with withdrawing.uow() as tx:
        mismatches = tx.ledger.check().mismatches
    assert mismatches == []  # every balance still equals the sum of its entries


class LosingCommits:
    """Units of work on the member database whose next commit, once armed, is lost: the transaction rolls back
    and the commit raises, as when PostgreSQL restarts or refuses a serializable commit."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.armed = engine, False

    def __call__(self) -> SqlMemberUnitOfWork:
        return LosingUnitOfWork(self)


class LosingUnitOfWork(SqlMemberUnitOfWork):
    def __init__(self, commits: LosingCommits) -> None:
        super().__init__(commits.engine, "member")
        self.commits = commits

    def commit(self) -> None:
        if self.commits.armed:
            self.commits.armed = False
            self.rollback()
            raise OperationalError("COMMIT", None, ConnectionResetError("server closed the connection unexpectedly"))
        super().commit()


class LoseTheCommitAfterTheTransfer:
    """The real transfer; once it has been sent, the next commit is lost."""

    def __init__(self, payout: PayoutChannel, commits: LosingCommits) -> None:
        self.payout, self.commits = payout, commits

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        sent = self.payout.pay(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)
        self.commits.armed = True
        return sent

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return self.payout.status(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)


def test_a_commit_lost_after_the_transfer_leaves_nothing_to_release_and_pays_once(withdrawing: Withdrawing,
                                                                                  engine: Engine) -> None:
    commits = LosingCommits(engine)
    with pytest.raises(OperationalError):  # the transfer succeeded at WeChat Pay; recording it was lost
        service.decide_withdrawal(commits(), LoseTheCommitAfterTheTransfer(withdrawing.payout, commits),
                                  withdrawal_id=withdrawing.withdrawal.id or 0, approve=True, note="ok",
                                  decided_by=FINANCE)
    after_the_loss = withdrawing.state()
    with pytest.raises(Conflict) as rejected:  # releasing the amount now would pay it twice
        service.decide_withdrawal(withdrawing.uow(), withdrawing.payout, withdrawal_id=withdrawing.withdrawal.id or 0,
                                  approve=False, note="changed my mind", decided_by=FINANCE)
    approved_again = withdrawing.approve()
    waiting = withdrawing.settle()  # its package was lost with the commit: the bill sent again for it
    withdrawing.confirm()
    ended = withdrawing.settle_on_replicas() + [withdrawing.settle()]

    assert after_the_loss == ("PAYING", 4_000, 6_000, -10_000, 0)
    assert (rejected.value.code, approved_again, waiting) == ("WITHDRAWAL_ALREADY_DECIDED", "PAYING", 0)
    assert sorted(ended) == [0, 0, 0, 1]
    assert withdrawing.state() == ("PAID", 4_000, 0, -4_000, 1)
    assert withdrawing.transfers() == [(withdrawing.no, 6_000, "SUCCESS")]  # one transfer, ever
    with withdrawing.uow() as tx:
        assert tx.ledger.check()[1] == []
