"""The events the member service publishes, built in one place."""

from __future__ import annotations

from datetime import datetime

from mall.events.v1.member_events_pb2 import MemberJoined, MemberPlanSubscribed, MemberRecharged, MemberWithdrawn
from mall.events.v1.member_ledger_events_pb2 import PointsChanged

from services.common.events import timestamp
from services.common.uow import UnitOfWork
from services.member.domain import Member, Plan, Recharge, Withdrawal


def member_joined(uow: UnitOfWork, member: Member) -> None:
    if member.joined_at is not None:
        uow.publish(MemberJoined(user_id=member.user_id, member_no=member.member_no, channel=member.channel,
                                 level=member.level.code, invited_by_user_id=member.invited_by or 0,
                                 joined_at=timestamp(member.joined_at)),
                    aggregate_id=str(member.user_id))


def member_recharged(uow: UnitOfWork, recharge: Recharge, *, member_no: str, balance_fen: int,
                     bonus_fen: int = 0) -> None:
    if recharge.paid_at is not None:
        uow.publish(MemberRecharged(user_id=recharge.user_id, member_no=member_no, recharge_no=recharge.recharge_no,
                                 amount_fen=recharge.amount_fen, bonus_fen=bonus_fen, channel=recharge.channel,
                                 balance_fen=balance_fen, recharged_at=timestamp(recharge.paid_at)),
                    aggregate_id=str(recharge.user_id))


def member_withdrawn(uow: UnitOfWork, withdrawal: Withdrawal, *, member_no: str, balance_fen: int,
                     withdrawn_at: datetime, channel: str) -> None:
    """The payout reached the user (at `withdrawn_at`: the approval, or a later check of a transfer in flight)
    through the payout `channel`; `amount_fen` is what was paid out (the amount asked for less the spent bonus
    kept from it), `requested_fen` the amount asked for, `bonus_forfeited_fen` the bonus the withdrawal forfeited."""
    uow.publish(MemberWithdrawn(user_id=withdrawal.user_id, member_no=member_no, withdrawal_id=withdrawal.id,
                                amount_fen=withdrawal.payout_fen, balance_fen=balance_fen,
                                withdrawn_at=timestamp(withdrawn_at), withdrawal_no=withdrawal.withdrawal_no,
                                requested_fen=withdrawal.amount_fen,
                                bonus_forfeited_fen=withdrawal.bonus_forfeited_fen, channel=channel),
                aggregate_id=str(withdrawal.user_id))


def member_plan_subscribed(uow: UnitOfWork, member: Member, plan: Plan, *, posting_key: str, balance_fen: int,
                           now: datetime) -> None:
    """`member` paid `plan` from the wallet (ledger posting `posting_key`) at `now`; its expiry is the new one."""
    assert member.member_no is not None and member.plan_expires_at is not None
    uow.publish(MemberPlanSubscribed(user_id=member.user_id, member_no=member.member_no, plan_id=plan.id,
                                     plan_name=plan.name, amount_fen=plan.price_fen, posting_key=posting_key,
                                     balance_fen=balance_fen, subscribed_at=timestamp(now),
                                     expires_at=timestamp(member.plan_expires_at)),
                aggregate_id=str(member.user_id))


def points_changed(uow: UnitOfWork, *, user_id: int, delta: int, balance: int, reason: str, reference: str,
                   now: datetime) -> None:
    uow.publish(PointsChanged(user_id=user_id, delta=delta, balance=balance, reason=reason, reference=reference,
                              occurred_at=timestamp(now)), aggregate_id=str(user_id))
