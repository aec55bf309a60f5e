"""A hypothesis state machine over every ledger operation, for any member unit of work (fakes, SQLite, PostgreSQL).

It keeps a model of each user's wallet and points and checks after every step: the ledger agrees
with the model, no account is negative, every balance equals the sum of its entries, and every
unit balances to zero across users and platform (double entry).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, precondition, rule

from services.common.errors import DomainError
from services.common.formats import MAX_PENDING_WITHDRAWALS
from services.member import service
from services.member.channels import Payout, PayoutState
from services.member.domain import (
    PLATFORM,
    POINTS_OWED_KINDS,
    Account,
    level_for,
    points_earned,
    recharge_bonus,
)
from services.member.uow import MemberUnitOfWork
from tests.fakes import SimulatedPayment
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund

USERS = (1, 2)
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
amounts = st.integers(min_value=100, max_value=9_000)  # 50 steps of withdrawals stay under the daily maximum
EVER = "ever"  # the refunded bonus held since the start, as against since a withdrawal was asked for


class ScriptedPayout:
    """A payout channel whose first answer is `first` and whose later answers are `ends` (IN_FLIGHT until set)."""

    def __init__(self, first: PayoutState, ends: dict[str, PayoutState]) -> None:
        self.first, self.ends = first, ends

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(self.first, f"TX{payout_no}")

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(self.ends.get(payout_no, PayoutState.IN_FLIGHT), f"TX{payout_no}", "scripted")


@dataclass(frozen=True)
class Withdrawn:
    """A withdrawal the machine asked for (id 0: refused), as the model expects it: `deducted` of the spent bonus
    kept from the transfer, `from_bonus` forfeited from the bonus credit, the recharges it drew on."""

    user: int
    id: int = 0
    amount: int = 0
    deducted: int = 0
    from_bonus: int = 0
    draws: list[tuple[dict[str, int], int, int]] = field(default_factory=list)
    no: str = ""  # set while its transfer is in flight


def ledger_machine(new_store: Callable[[], Callable[[], MemberUnitOfWork]]) -> type[RuleBasedStateMachine]:
    """The machine class; `new_store()` empties (or makes) a store for each example and returns its uow factory."""

    class LedgerMachine(RuleBasedStateMachine):
        withdrawals = Bundle("withdrawals")
        paying = Bundle("paying")
        paid_orders = Bundle("paid_orders")
        holds = Bundle("holds")
        credited_orders = Bundle("credited_orders")

        def __init__(self) -> None:
            super().__init__()
            self.uow = new_store()
            self.numbers = itertools.count(1)
            # cash_in: recharged, less the cash (not bonus) orders took, plus the cash their refunds gave back;
            # paid_out: what transfers paid the user
            self.model = {user: {"available": 0, "pending": 0, "bonus": 0, "points": 0, "locked": 0, "spend": 0,
                                 "cash_in": 0, "paid_out": 0} for user in USERS}
            # spent bonus each user repaid with cash (kept by paid withdrawals) that nothing gave back yet
            self.repaid = {user: 0 for user in USERS}
            # of each standing withdrawal (by id), the bonus refunded since it was asked for that the user still holds
            # and nothing turned into cash (service._refunded_bonus_held): what its payout may turn into cash; under
            # EVER, the same since the start, what a give-back may turn into cash. "taken": what each withdrawal's
            # forfeit took of that figure (by id), put back when it is given back;
            # "put_back": what give-backs put back of refunded bonus forfeited before the withdrawal was asked for.
            self.refunded_held: dict[int, dict[int | str, dict]] = {user: {EVER: {"held": 0, "taken": {}}}
                                                                     for user in USERS}
            self.credits: dict[str, dict[str, int]] = {}
            # each user's paid recharges, newest first: principal, bonus, and what standing withdrawals drew of them
            self.lots: dict[int, list[dict[str, int]]] = {user: [] for user in USERS}
            self.large_withdrawals = 0
            self.under_review = {user: 0 for user in USERS}  # withdrawals awaiting review: MAX_PENDING_WITHDRAWALS
            self.bonus_orders: list[tuple[int, str, int, int]] = []  # paid, then their bonus forfeited by withdrawals
            self.transfer_ends: dict[str, PayoutState] = {}  # how each transfer in flight ends, once decided
            self.months = 0  # how many times points were expired
            # points each user owes, by kind (service._owe_points), and the holds an expiry run found LOCKED (all
            # their points past their term since: taken when released)
            self.owed = {user: {kind: 0 for kind in POINTS_OWED_KINDS} for user in USERS}
            self.held_over_expiry: set[str] = set()
            self.locked_orders: set[str] = set()
            for user in USERS:
                service.sign_up(self.uow(), user_id=user, channel="self", invite_code=None, now=NOW)

        def refused(self, call: Callable[[], object], code: str) -> None:
            try:
                call()
            except DomainError as exc:
                assert exc.code == code, exc.code
            else:
                raise AssertionError(f"expected {code}")

        @rule(user=st.sampled_from(USERS), amount=amounts)
        def recharge(self, user: int, amount: int) -> None:
            recharge, _ = service.create_recharge(self.uow(), SimulatedPayment(), user_id=user, amount_fen=amount,
                                                  channel="wechat", idempotency_key=uuid.uuid4().hex, now=NOW)
            for _ in range(2):  # a replayed notify credits nothing more
                service.credit_recharge(self.uow(), recharge_no=recharge.recharge_no, paid_fen=amount,
                                        channel_txn_id=f"T{recharge.recharge_no}", now=NOW)
            self.model[user]["available"] += amount
            self.model[user]["cash_in"] += amount
            self.model[user]["bonus"] += recharge_bonus(amount)
            self.lots[user].insert(0, {"principal": amount, "bonus": recharge_bonus(amount), "drawn": 0,
                                       "forfeited": 0})

        @rule(user=st.sampled_from(USERS))
        def recharge_with_a_bonus(self, user: int) -> None:
            self.recharge(user, 50_000)  # the promotion's threshold: 50 yuan of bonus credit

        @rule(target=paid_orders, user=st.sampled_from(USERS), amount=amounts)
        def pay_with_balance(self, user: int, amount: int) -> tuple[int, str, int, int]:
            order_no, model = f"O{next(self.numbers)}", self.model[user]
            if amount > model["available"] + model["bonus"]:
                self.refused(lambda: service.pay_with_balance(self.uow(), user_id=user, order_no=order_no,
                                                              amount_fen=amount, now=NOW), "INSUFFICIENT_BALANCE")
                return (user, "", 0, 0)
            for _ in range(2):  # a retried payment pays once
                service.pay_with_balance(self.uow(), user_id=user, order_no=order_no, amount_fen=amount, now=NOW)
            bonus = min(model["bonus"], amount)  # bonus credit first
            model["bonus"] -= bonus
            model["available"] -= amount - bonus
            model["cash_in"] -= amount - bonus
            self._bonus_moved(user)
            return (user, order_no, amount, bonus)

        @rule(order=consumes(paid_orders), share=st.integers(min_value=1, max_value=100))
        def refund_to_balance(self, order: tuple[int, str, int, int], share: int) -> None:
            user, order_no, paid, bonus = order
            if not order_no:
                return
            amount = max(1, paid * share // 100)
            for _ in range(2):
                service.refund_to_balance(self.uow(), user_id=user, refund_no=f"RF-{order_no}", order_no=order_no,
                                          amount_fen=amount, now=NOW)
            back = min(amount, bonus)  # the order's bonus comes back as bonus, first
            cash = min(back, self.repaid[user])  # but what withdrawals repaid of the spent bonus comes back as cash
            self.repaid[user] -= cash
            self.model[user]["bonus"] += back - cash
            self.model[user]["available"] += amount - back + cash
            self.model[user]["cash_in"] += amount - back
            self._bonus_moved(user, refunded=back - cash)

        def _bonus_moved(self, user: int, refunded: int = 0, *, forfeited_by: int = 0,
                         given_back: int = 0) -> dict[int | str, int]:
            """The user's bonus moved (`refunded`: refunds credited that much of it, net of what came back as cash;
            `forfeited_by`, `given_back`: that withdrawal's forfeit, or its return): what each standing withdrawal
            counts as refunded and held is at most the bonus left (spent or forfeited meanwhile, the refunded bonus
            goes last); a forfeit given back puts back what it took. What the give-back put back, by tracker."""
            put_back = {}
            for key, tracker in self.refunded_held[user].items():
                turned = tracker["taken"].pop(given_back, 0) if given_back else refunded
                before = tracker["held"]
                tracker["held"] = max(0, min(before + turned, self.model[user]["bonus"]))
                if forfeited_by:
                    tracker["taken"][forfeited_by] = before - tracker["held"]
                put_back[key] = tracker["held"] - before
            return put_back

        @rule(target=withdrawals, user=st.sampled_from(USERS), amount=amounts)
        def withdraw(self, user: int, amount: int) -> Withdrawn:
            key = f"k{next(self.numbers)}"
            model = self.model[user]
            if self.under_review[user] >= MAX_PENDING_WITHDRAWALS:  # refused before the balance is looked at
                self.refused(lambda: service.request_withdrawal(self.uow(), user_id=user, amount_fen=amount,
                                                                idempotency_key=key, now=NOW),
                             "TOO_MANY_PENDING_WITHDRAWALS")
                return Withdrawn(user)
            if amount > model["available"]:
                self.refused(lambda: service.request_withdrawal(self.uow(), user_id=user, amount_fen=amount,
                                                                idempotency_key=key, now=NOW), "INSUFFICIENT_BALANCE")
                return Withdrawn(user)
            withdrawal = service.request_withdrawal(self.uow(), user_id=user, amount_fen=amount,
                                                    idempotency_key=key, now=NOW)
            self.under_review[user] += 1
            draws, left = [], amount  # the newest recharges first; each forfeits its bonus in proportion, rounded up
            for lot in self.lots[user]:
                take = min(left, lot["principal"] - lot["drawn"])
                if take > 0:
                    forfeit = max(0, -(-(lot["drawn"] + take) * lot["bonus"] // lot["principal"]) - lot["forfeited"])
                    lot["drawn"] += take
                    lot["forfeited"] += forfeit
                    draws.append((lot, take, forfeit))
                    left -= take
            forfeited = sum(forfeit for _, _, forfeit in draws)
            from_bonus = min(forfeited, model["bonus"])  # unspent bonus first; the spent rest is kept from the transfer
            model["available"] -= amount
            model["bonus"] -= from_bonus
            model["pending"] += amount - (forfeited - from_bonus)
            self._bonus_moved(user, forfeited_by=withdrawal.id or 0)
            self.refunded_held[user][withdrawal.id or 0] = {"held": 0, "taken": {}, "put_back": 0}
            return Withdrawn(user, withdrawal.id or 0, amount, forfeited - from_bonus, from_bonus, draws)

        @rule(target=withdrawals, user=st.sampled_from(USERS), spent=st.integers(min_value=100, max_value=5_000),
              recharge_again=st.booleans())
        def spend_the_bonus_then_withdraw_the_recharge(self, user: int, spent: int, recharge_again: bool) -> Withdrawn:
            """Recharge 500 yuan (+50 of bonus), let the bonus pay an order, withdraw the 500: the bonus is forfeited,
            what was spent of it kept from the transfer (repaid); the order is left for `refund_a_bonus_order`.
            `recharge_again`: another 500 yuan (+50) while the withdrawal is under review, whose bonus stays bonus."""
            if self.under_review[user] >= MAX_PENDING_WITHDRAWALS:  # no place for the withdrawal
                return Withdrawn(user)
            self.large_withdrawals += 1
            if self.large_withdrawals > 4:  # with the small ones, under the daily maximum
                return Withdrawn(user)
            self.recharge_with_a_bonus(user)
            self.bonus_orders.append(self.pay_with_balance(user, spent))
            withdrawn = self.withdraw(user, 50_000)
            if recharge_again:
                self.recharge_with_a_bonus(user)
            return withdrawn

        @rule(target=withdrawals, user=st.sampled_from(USERS), unspent=st.integers(min_value=0, max_value=2_000),
              first=st.integers(min_value=1_000, max_value=49_000), share=st.integers(min_value=1, max_value=100),
              then=st.sampled_from(["left", "second rejected", "first paid, second rejected", "refund first, first rejected",
                                    "refund first, second paid, first rejected"]))
        def refund_between_two_withdrawals(self, user: int, unspent: int, first: int, share: int, then: str) -> object:
            """Recharge 500 yuan (+50), let the bonus pay an order (all of it but `unspent`), withdraw part of the recharge (what its forfeit
            finds spent is kept), refund part of the order (as bonus: nothing is repaid yet), withdraw the rest (its
            forfeit takes the refunded bonus); `then` the second is rejected, before or after the first is paid (as
            if it had never been asked for, the first's payout turns the refunded bonus into cash), or finance decides
            both later, in any order. "refund first": the refund of all the bonus spent, then the two (the first's
            forfeit takes the refunded bonus, the second's keeps), and the first is rejected, before or after the second
            is paid: as if it had never been asked for, the refunded bonus ends as cash."""
            if self.under_review[user] > MAX_PENDING_WITHDRAWALS - 2:  # no place for both withdrawals
                return multiple()
            self.large_withdrawals += 1
            if self.large_withdrawals > 4:  # with the small ones, under the daily maximum
                return multiple()
            self.recharge_with_a_bonus(user)
            if then.startswith("refund first"):  # the refund, then both: the first's forfeit takes the refunded bonus
                order = self.pay_with_balance(user, self.model[user]["bonus"])
                self.refund_to_balance(order, share)
                withdrawn, second = self.withdraw(user, first), self.withdraw(user, 50_000 - first)
                if then.endswith("second paid, first rejected"):
                    self.decide(second, True, PayoutState.PAID)
                    return multiple(self.decide(withdrawn, False, PayoutState.PAID))
                self.decide(withdrawn, False, PayoutState.PAID)
                return multiple(second)
            order = self.pay_with_balance(user, self.model[user]["bonus"] - unspent)
            withdrawn = self.withdraw(user, first)
            self.refund_to_balance(order, share)
            second = self.withdraw(user, 50_000 - first)
            if then == "left":
                return multiple(withdrawn, second)
            if then == "first paid, second rejected":
                withdrawn = self.decide(withdrawn, True, PayoutState.PAID)
            self.decide(second, False, PayoutState.PAID)
            return multiple(withdrawn)

        @precondition(lambda self: self.bonus_orders)
        @rule(share=st.integers(min_value=1, max_value=100))
        def refund_a_bonus_order(self, share: int) -> None:
            self.refund_to_balance(self.bonus_orders.pop(0), share)

        def _paid_out(self, withdrawn: Withdrawn) -> None:
            """Its transfer paid: the spent bonus it kept is repaid, and what of it the user holds as bonus (refunded
            while it was under way, never a recharge's bonus) comes back as cash."""
            model = self.model[withdrawn.user]
            model["pending"] -= withdrawn.amount - withdrawn.deducted
            model["paid_out"] += withdrawn.amount - withdrawn.deducted
            self.repaid[withdrawn.user] += withdrawn.deducted
            tracker = self.refunded_held[withdrawn.user].pop(withdrawn.id)
            held, ever = tracker["held"], self.refunded_held[withdrawn.user][EVER]["held"]
            if withdrawn.deducted:
                self._repaid_to_cash(withdrawn.user, held + max(0, min(tracker["put_back"], ever - held)))

        def _repaid_to_cash(self, user: int, bonus: int) -> int:
            """Of `bonus` refunded and held, what paid withdrawals repaid and nothing gave back yet becomes cash:
            how much."""
            cash = min(bonus, self.repaid[user])
            self.repaid[user] -= cash
            self.model[user]["bonus"] -= cash
            self.model[user]["available"] += cash
            self._bonus_moved(user, refunded=-cash)
            return cash

        def _given_back(self, withdrawn: Withdrawn) -> None:
            """Rejected, or its transfer failed: the forfeited bonus and the whole amount come back; the refunded bonus
            its forfeit took becomes cash as far as paid withdrawals repaid spent bonus (as without it their payouts
            would have turned it into cash)."""
            model = self.model[withdrawn.user]
            model["pending"] -= withdrawn.amount - withdrawn.deducted
            model["available"] += withdrawn.amount
            del self.refunded_held[withdrawn.user][withdrawn.id]
            model["bonus"] += withdrawn.from_bonus
            put_back = self._bonus_moved(withdrawn.user, given_back=withdrawn.id)[EVER]
            cash = self._repaid_to_cash(withdrawn.user, put_back)
            # withdrawals asked for after its forfeit: their payouts turn what it put back into cash, as had it never
            # been asked for, less what became cash now (service._refunded_bonus_held_since_hold)
            for key, tracker in self.refunded_held[withdrawn.user].items():
                if key != EVER and key > withdrawn.id:
                    tracker["put_back"] += put_back - cash
            for lot, take, forfeit in withdrawn.draws:
                lot["drawn"] -= take
                lot["forfeited"] -= forfeit

        @rule(target=paying, withdrawal=consumes(withdrawals), approve=st.booleans(),
              first=st.sampled_from([PayoutState.PAID, PayoutState.IN_FLIGHT, PayoutState.UNKNOWN]))
        def decide(self, withdrawal: Withdrawn, approve: bool, first: PayoutState) -> Withdrawn:
            """Finance decides; an approved transfer is paid at once, or stays in flight (or unanswered)."""
            if not withdrawal.id:
                return withdrawal
            self.under_review[withdrawal.user] -= 1  # approved (PAYING) or rejected: no longer awaiting review
            for _ in range(2):  # the same decision again changes nothing
                decided = service.decide_withdrawal(self.uow(), ScriptedPayout(first, self.transfer_ends),
                                                    withdrawal_id=withdrawal.id, approve=approve, note="",
                                                    decided_by=9, now=NOW)
            if approve and first != PayoutState.PAID:
                return replace(withdrawal, no=decided.withdrawal_no)  # PAYING: still pending
            if approve:
                self._paid_out(withdrawal)
            else:
                self._given_back(withdrawal)
            return Withdrawn(withdrawal.user)

        @rule(transfer=consumes(paying), succeeds=st.booleans())
        def end_transfer(self, transfer: Withdrawn, succeeds: bool) -> None:
            """A transfer in flight ends; the payout job (run twice, as replicas would) settles it once."""
            if not transfer.no:
                return
            self.transfer_ends[transfer.no] = PayoutState.PAID if succeeds else PayoutState.FAILED
            for _ in range(2):
                service.settle_payouts(self.uow, ScriptedPayout(PayoutState.IN_FLIGHT, self.transfer_ends),
                                       now=NOW + timedelta(minutes=2))
            if succeeds:
                self._paid_out(transfer)
            else:
                self._given_back(transfer)

        def _paid(self, user: int, order_no: str, paid_fen: int) -> None:
            model = self.model[user]
            earned = points_earned(paid_fen, level_for(model["spend"]))  # at the level before this order's spend
            model["spend"] += paid_fen
            model["points"] += earned
            if earned:
                self._take_owed(user)
            self.credits[order_no] = {"user": user, "paid": paid_fen, "points": earned, "refunded": 0, "reversed": 0}

        @rule(target=credited_orders, user=st.sampled_from(USERS), paid=st.integers(min_value=1, max_value=300_000))
        def earn(self, user: int, paid: int) -> str:
            order_no = f"E{next(self.numbers)}"
            for _ in range(2):  # order-paid delivered twice
                award_points_for_order(self.uow(), order_no=order_no, user_id=user, paid_fen=paid, now=NOW)
            self._paid(user, order_no, paid)
            return order_no

        @rule(target=holds, user=st.sampled_from(USERS), points=st.integers(min_value=1, max_value=5_000))
        def lock_points(self, user: int, points: int) -> tuple[int, str, int]:
            order_no = f"H{next(self.numbers)}"
            if points > self.model[user]["points"]:
                self.refused(lambda: service.lock_points(self.uow(), user_id=user, order_no=order_no, points=points,
                                                         payable_fen=points * 2, now=NOW), "INSUFFICIENT_POINTS")
                return (user, "", 0)
            service.lock_points(self.uow(), user_id=user, order_no=order_no, points=points, payable_fen=points * 2,
                                now=NOW)
            self.model[user]["points"] -= points
            self.model[user]["locked"] += points
            self.locked_orders.add(order_no)
            return (user, order_no, points)

        @rule(hold=consumes(holds), paid=st.booleans())
        def end_hold(self, hold: tuple[int, str, int], paid: bool) -> None:
            user, order_no, points = hold
            if not order_no:
                return
            self.model[user]["locked"] -= points
            self.locked_orders.discard(order_no)
            if paid:  # the order is paid: the points are spent, and the payment earns
                award_points_for_order(self.uow(), order_no=order_no, user_id=user, paid_fen=points, now=NOW)
                self._paid(user, order_no, points)
            else:
                service.release_points(self.uow(), order_no=order_no, now=NOW)
                self.model[user]["points"] += 0 if order_no in self.held_over_expiry else points
                self._take_owed(user)

        def _take_owed(self, user: int) -> None:
            """Points were credited to the user: what they owe is taken, as far as they have it, kind by kind."""
            for kind in POINTS_OWED_KINDS:
                taken = min(self.owed[user][kind], self.model[user]["points"])
                self.owed[user][kind] -= taken
                self.model[user]["points"] -= taken

        @rule(user=st.sampled_from(USERS), wanted=st.integers(min_value=1, max_value=5_000))
        def cancel_a_paid_order_after_review(self, user: int, wanted: int) -> None:
            """An order using some of the user's points is paid, cancelled after review (the event delivered
            twice) and refunded in full: the spent points come back once, the earned ones are taken back as
            far as the member still has them."""
            points = min(wanted, self.model[user]["points"])
            if points == 0:
                return
            order_no = f"C{next(self.numbers)}"
            service.lock_points(self.uow(), user_id=user, order_no=order_no, points=points, payable_fen=points * 2,
                                now=NOW)
            award_points_for_order(self.uow(), order_no=order_no, user_id=user, paid_fen=points, now=NOW)
            self.model[user]["points"] -= points
            self._paid(user, order_no, points)
            for _ in range(2):
                with self.uow() as uow:
                    service.apply_order_cancelled(uow, order_no=order_no, was_paid=True, now=NOW)
                    uow.commit()
            self.model[user]["points"] += points
            self._take_owed(user)
            self._refund(order_no, points)

        @rule(order_no=credited_orders, share=st.integers(min_value=1, max_value=100))
        def refund_order(self, order_no: str, share: int) -> None:
            self._refund(order_no, max(1, self.credits[order_no]["paid"] * share // 100))

        @rule(target=credited_orders, user=st.sampled_from(USERS), paid=st.integers(min_value=1, max_value=300_000),
              share=st.integers(min_value=1, max_value=100))
        def refund_before_payment(self, user: int, paid: int, share: int) -> str:
            """The order's refund is read before its order-paid (another topic), each delivered twice: the
            member ends as if the order had been paid, then refunded."""
            order_no, refund_no, amount = f"P{next(self.numbers)}", f"R{next(self.numbers)}", max(1, paid * share // 100)
            for _ in range(2):
                reverse_points_for_refund(self.uow(), order_no=order_no, refund_no=refund_no,
                                          amount_fen=amount, now=NOW)
            for _ in range(2):
                award_points_for_order(self.uow(), order_no=order_no, user_id=user, paid_fen=paid, now=NOW)
            self._paid(user, order_no, paid)
            self._refunded(order_no, amount)
            return order_no

        def _refund(self, order_no: str, amount: int) -> None:
            reverse_points_for_refund(self.uow(), order_no=order_no, refund_no=f"R{next(self.numbers)}",
                                      amount_fen=amount, now=NOW)
            self._refunded(order_no, amount)

        def _refunded(self, order_no: str, amount: int) -> None:
            credit = self.credits[order_no]
            model = self.model[credit["user"]]
            refunded = min(credit["paid"], credit["refunded"] + amount)
            model["spend"] -= refunded - credit["refunded"]
            credit["refunded"] = refunded
            owed = credit["points"] * refunded // credit["paid"] - credit["reversed"]
            if owed > 0:  # what the member spent or holds is owed
                taken = min(owed, model["points"])
                model["points"] -= taken
                self.owed[credit["user"]]["order_refunded"] += owed - taken
                credit["reversed"] += owed

        @rule()
        def expire(self) -> None:
            """A year and more on (a later month each time): every point earned so far has expired,
            those held by orders are marked expired on their holds and taken if released; a second run
            in the same month expires nothing more."""
            self.months += 1
            later = NOW.replace(year=NOW.year + 2 + self.months // 12, month=self.months % 12 + 1, day=1)
            for _ in range(2):
                service.expire_points(self.uow, now=later)
            for model in self.model.values():
                model["points"] = 0
            self.held_over_expiry |= self.locked_orders

        @invariant()
        def ledger_agrees_with_the_model_and_with_itself(self) -> None:
            uow = self.uow()
            with uow:
                for user, model in self.model.items():
                    actual = {name: uow.ledger.balance(user, account) for name, account in (
                        ("available", Account.AVAILABLE), ("pending", Account.PENDING), ("bonus", Account.BONUS),
                        ("points", Account.POINTS), ("locked", Account.POINTS_LOCKED))}
                    assert actual == {name: model[name] for name in actual}, (user, actual, model)
                    assert min(actual.values()) >= 0
                    # bonus never leaves as cash: what the user holds as cash or was paid out is at most the cash
                    # they brought and did not spend
                    assert actual["available"] + actual["pending"] + model["paid_out"] <= model["cash_in"], (user, model)
                    owed = uow.points.owed(user)
                    assert {kind: owed.get(kind, 0) for kind in POINTS_OWED_KINDS} == self.owed[user], (user, owed)
                wallets = sum(uow.ledger.balance(u, a) for u in USERS
                              for a in (Account.AVAILABLE, Account.PENDING, Account.BONUS))
                platform_fen = sum(uow.ledger.balance(PLATFORM, a)
                                   for a in (Account.CLEARING, Account.SALES, Account.PROMOTIONS))
                points = sum(uow.ledger.balance(u, a) for u in USERS for a in (Account.POINTS, Account.POINTS_LOCKED))
                assert (wallets + platform_fen, points + uow.ledger.balance(PLATFORM, Account.POINTS_ISSUED)) == (0, 0)
                assert uow.ledger.check()[1] == []
            for user in USERS:
                summary = service.get_member(self.uow(), user_id=user, now=NOW)
                assert summary.member.total_spend_fen == self.model[user]["spend"]

    return LedgerMachine
