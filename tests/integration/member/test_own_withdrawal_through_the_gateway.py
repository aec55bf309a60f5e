"""Withdrawal decisions through the whole stack: the gateway, a real member gRPC server, PostgreSQL. Separation of
duties: a finance staff member who withdraws from their own wallet cannot approve it (403 OWN_REQUEST in the error
format, nothing moved); another finance staff member can. What each reads: finance's note and the payout channel's
reasons are for staff; the shopper reads what finance wrote for them, or a fixed sentence for a refused transfer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from services.common.formats import PAYOUT_REFUSED_SHOPPER
from services.member.channels import Payout, PayoutFailed, RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.keys import JwtKeys
from tests.integration.member.conftest import gateway_over

pytestmark = pytest.mark.integration

CLERK, COLLEAGUE = 901, 902  # finance staff; the clerk also shops, with a wallet


class Payouts(SimulatedPayout):
    """The simulated payout channel, which refuses every transfer outright with `refusing` when set."""

    refusing = ""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        if self.refusing:
            raise PayoutFailed(self.refusing)
        return super().pay(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)


@pytest.fixture
def payouts() -> Payouts:
    return Payouts()


@pytest.fixture
def gateway(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys, payouts: Payouts) -> Iterator[FlaskClient]:
    """The gateway app, its member service a real gRPC server on PostgreSQL."""
    with gateway_over(MemberServicer(uow, payouts, RechargeChannels({}), categories=FakeCategories(),
                                     phones=FakePhones()), jwt_keys) as client:
        yield client


def balances(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> tuple[int, int]:
    with uow() as work:
        found = work.ledger.balance(user_id, Account.AVAILABLE), work.ledger.balance(user_id, Account.PENDING)
        work.commit()
    return found


def seed(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> None:
    with uow() as work:
        work.ledger.post(transfer(f"seed:{user_id}", "recharge", "seed", amount=10_000,
                                  source=(PLATFORM, Account.CLEARING), target=(user_id, Account.AVAILABLE)),
                         datetime.now(UTC))
        work.commit()


def test_finance_staff_cannot_approve_their_own_withdrawal_but_a_colleague_can(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]]) -> None:
    seed(uow, CLERK)
    clerk = bearer(CLERK, "finance")
    asked = gateway.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                         headers={**clerk, "Idempotency-Key": "own-1"})
    assert asked.status_code == 201, asked.get_json()
    decision = f"/api/v1/admin/withdrawals/{asked.get_json()['id']}/decision"

    own = gateway.post(decision, json={"approve": True, "note": "ok"}, headers=clerk)

    error = own.get_json()["error"]
    assert (own.status_code, error["code"], bool(error["request_id"])) == (403, "OWN_REQUEST", True)
    listed = gateway.get("/api/v1/member/withdrawals", headers=clerk).get_json()["items"]
    assert ([item["status"] for item in listed], balances(uow, CLERK)) == (["PENDING_REVIEW"], (4_000, 6_000))

    approved = gateway.post(decision, json={"approve": True, "note": "ok"}, headers=bearer(COLLEAGUE, "finance"))

    assert (approved.status_code, approved.get_json()["status"]) == (200, "PAID")
    assert balances(uow, CLERK) == (4_000, 0)


SHOPPER = 903
INTERNAL = "internal: flagged by risk team, linked to account 42"


def test_a_rejected_shopper_reads_only_what_finance_wrote_for_them_and_staff_read_both(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]]) -> None:
    seed(uow, SHOPPER)
    shopper, finance = bearer(SHOPPER), bearer(COLLEAGUE, "finance")
    asked = gateway.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                         headers={**shopper, "Idempotency-Key": "rejected-1"}).get_json()

    decided = gateway.post(f"/api/v1/admin/withdrawals/{asked['id']}/decision", headers=finance, json={
        "approve": False, "note": INTERNAL, "shopper_reason": "please verify your real name first"})

    mine = gateway.get(f"/api/v1/member/withdrawals/{asked['id']}", headers=shopper).get_json()
    listed = gateway.get("/api/v1/member/withdrawals", headers=shopper).get_json()["items"][0]
    staff = gateway.get("/api/v1/admin/withdrawals?status=REJECTED", headers=finance).get_json()["items"][0]
    assert decided.status_code == 200, decided.get_json()
    assert [(body["status"], body.get("note"), body["shopper_reason"]) for body in (mine, listed, staff)] == [
        ("REJECTED", None, "please verify your real name first"),
        ("REJECTED", None, "please verify your real name first"),
        ("REJECTED", INTERNAL, "please verify your real name first")]
    assert balances(uow, SHOPPER) == (10_000, 0)


def test_a_shopper_whose_transfer_the_channel_refused_reads_a_fixed_sentence_never_its_reason(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]],
        payouts: Payouts) -> None:
    seed(uow, SHOPPER)
    shopper, finance = bearer(SHOPPER), bearer(COLLEAGUE, "finance")
    asked = gateway.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                         headers={**shopper, "Idempotency-Key": "refused-1"}).get_json()
    payouts.refusing = "NAME_MISMATCH"

    refused = gateway.post(f"/api/v1/admin/withdrawals/{asked['id']}/decision", headers=finance,
                           json={"approve": True, "note": "ok"})

    mine = gateway.get(f"/api/v1/member/withdrawals/{asked['id']}", headers=shopper).get_json()
    staff = gateway.get("/api/v1/admin/withdrawals", headers=finance).get_json()["items"][0]
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (422, "PAYOUT_FAILED")
    assert (mine["status"], mine["shopper_reason"], "note" in mine, "NAME_MISMATCH" in str(mine)) == (
        "PENDING_REVIEW", PAYOUT_REFUSED_SHOPPER, False, False)
    assert (staff["note"], staff["shopper_reason"]) == ("[payout refused: NAME_MISMATCH]", PAYOUT_REFUSED_SHOPPER)
    assert balances(uow, SHOPPER) == (4_000, 6_000)
