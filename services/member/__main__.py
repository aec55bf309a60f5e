"""Entry point: python -m services.member [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

from mall.member.v1 import member_pb2, member_pb2_grpc
from sqlalchemy import Engine

from services.common.alipay import Alipay
from services.common.auth import service_identity
from services.common.bankcard import Bankcard
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.discovery import Discovery
from services.common.grpc_server import registration
from services.common.orders import GrpcOrders
from services.common.runtime import ServiceApp, every, main, round_budget
from services.common.uow import RoundBudget
from services.common.wechatpay import WechatPay
from services.member import service
from services.member.channels import (
    AlipayRecharge,
    BankcardRecharge,
    ChannelAdapter,
    PayoutChannel,
    RechargeChannels,
    UnconfiguredPayout,
    WechatRecharge,
    WechatTransferPayout,
)
from services.member.config import NOTIFY_PATHS, MemberServiceSettings, grpc_timeout_seconds
from services.member.consumers import consume_role_handlers
from services.member.db import OWN_ROWS, SqlMemberUnitOfWork, start_mappers
from services.member.grpc_api import MemberServicer
from services.member.neighbours import GrpcCategories, GrpcPayers
from services.member.phones import GrpcBuyerPhones

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


def recharge_channels(settings: MemberServiceSettings, clients: ServiceClients) -> RechargeChannels:
    """An adapter for each channel whose settings are present."""
    adapters: dict[str, ChannelAdapter] = {}
    if settings.wechatpay is not None:
        adapters["wechat"] = WechatRecharge(WechatPay(settings.wechatpay), GrpcPayers(clients),
                                            settings.notify_urls["wechat"])
    if settings.alipay is not None:
        adapters["alipay"] = AlipayRecharge(Alipay(settings.alipay), settings.notify_urls["alipay"])
    if settings.bankcard is not None:
        adapters["bank_card"] = BankcardRecharge(Bankcard(settings.bankcard), settings.notify_urls["bank_card"])
    # Said once at start: a channel left off answers CHANNEL_NOT_CONFIGURED to every recharge asking for it.
    log.info("recharge channels on: %s; off (not configured): %s", ", ".join(adapters) or "none",
             ", ".join(c for c in NOTIFY_PATHS if c not in adapters) or "none")
    return RechargeChannels(adapters)


def event_consumers(base: ServiceSettings, engine: Engine) -> list[EventConsumer]:
    """The consume role: the member side of paid, refunded and cancelled orders; no payment channel. Its one call out
    asks the user service, as the member service itself (SERVICE_TOKEN), whether a buyer an order would join has bound
    a phone."""
    start_mappers()
    clients = ServiceClients(Discovery(base.consul_http_addr, Env()), grpc_timeout_seconds(),
                             service_token=service_identity(base))
    return [EventConsumer("member", functools.partial(SqlMemberUnitOfWork, engine, "member"), base.kafka,
                          consume_role_handlers(clients))]


def build_app(base: ServiceSettings) -> ServiceApp:
    settings = MemberServiceSettings.from_env(base)
    start_mappers()
    engine = make_engine(base.database_url, base.database_timeouts)
    uow = functools.partial(SqlMemberUnitOfWork, engine, "member")
    # The payees of withdrawals are read as the member service itself (GrpcPayers), also by the payout job, and so
    # are the states of the orders whose checkout holds the hold expiry would release (GrpcOrders); a coupon
    # template's categories are checked against the product service's (GrpcCategories); a shopper joining must have
    # bound a phone, as the user service says to the member service itself (GrpcBuyerPhones: user.HasPhone).
    clients = ServiceClients(Discovery(base.consul_http_addr, Env()), settings.grpc_timeout_seconds,
                             service_token=service_identity(base))
    channels = recharge_channels(settings, clients)
    orders = GrpcOrders(clients)
    payout: PayoutChannel = (WechatTransferPayout(WechatPay(settings.wechatpay), GrpcPayers(clients))
                             if settings.wechatpay is not None else UnconfiguredPayout())
    servicer = MemberServicer(uow, payout, channels, categories=GrpcCategories(clients), phones=GrpcBuyerPhones(clients),
                              coupon_max_face_fen=settings.coupon_max_face_fen)
    # Each round of a sweep goes on for JOB_ROUND_BUDGET_SECONDS, a row's calls on top: a recharge's or payout's
    # channel query (and a payee read for a transfer); each page of the checkout-hold expiry's two sweeps asks the
    # order service once (GetOrderStates); a holder's points expiry calls nothing.
    call = max([settings.grpc_timeout_seconds] + [channel.timeout_seconds for channel in
                                                  (settings.wechatpay, settings.alipay, settings.bankcard) if channel])

    def budget(calls: int, sweeps: int = 1) -> RoundBudget:
        return round_budget(base.job_round_budget_seconds, row_calls_seconds=calls * call, sweeps=sweeps)

    recharges, expiries, payouts, holds, points = budget(2), budget(2), budget(2), budget(1, sweeps=2), budget(0)
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(member_pb2, member_pb2_grpc, "MemberService", servicer)],
                      consumers=event_consumers(base, engine), own_rows=OWN_ROWS,
                      jobs={
                          # a lost notify is still credited (once): ask the channels about pending recharges
                          "recharge-reconciliation": every(
                              settings.reconcile_seconds, "recharge reconciliation",
                              lambda: service.reconcile_recharges(uow, channels,
                                                                  settle_seconds=settings.reconcile_settle_seconds,
                                                                  budget=recharges), budget=recharges),
                          # a recharge past its payment deadline is asked about once more: credited if paid,
                          # else EXPIRED (so shoppers no longer see it awaiting payment)
                          "recharge-expiry": every(
                              settings.reconcile_seconds, "recharge expiry",
                              lambda: service.expire_recharges(uow, channels,
                                                               expire_seconds=settings.recharge_expire_seconds,
                                                               budget=expiries), budget=expiries),
                          # a transfer in flight (or whose answer was lost) is asked about until it ends
                          "payout-settlement": every(
                              settings.reconcile_seconds, "payout settlement",
                              lambda: service.settle_payouts(uow, payout,
                                                             settle_seconds=settings.reconcile_settle_seconds,
                                                             budget=payouts), budget=payouts),
                          # a coupon lock or points hold whose order's compensation was lost comes back, once the
                          # order service says its order ended unpaid or was never stored (a paid order's order-paid
                          # may be late: its hold stays for it)
                          "checkout-hold-expiry": every(settings.reconcile_seconds, "checkout hold expiry",
                                                        lambda: service.expire_checkout_holds(uow, orders,
                                                                                              budget=holds),
                                                        budget=holds),
                          # durable: the ledger is the schedule, and a missed run is caught up by the next; one
                          # replica's round at a time, stopped by its budget and going on after the last holder walked
                          "points-expiry": every(settings.points_expiry_seconds, "points expiry",
                                                 lambda: service.expire_points(uow, budget=points), budget=points),
                      })


if __name__ == "__main__":
    sys.exit(main("member", build_app, MIGRATIONS, consumers=event_consumers))
