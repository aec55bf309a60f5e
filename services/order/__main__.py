"""Entry point: python -m services.order [all|serve|relay|consume|migrate]."""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from mall.order.v1 import after_sale_pb2, after_sale_pb2_grpc, order_pb2, order_pb2_grpc

from services.common.auth import service_identity
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.db import make_engine
from services.common.discovery import Discovery
from services.common.grpc_server import registration
from services.common.pruning import kept_with_keys
from services.common.runtime import Job, ServiceApp, every, job_bound_seconds, main, round_budget
from services.common.runtime_config import RuntimeConfig
from services.common.uow import RoundBudget
from services.common.wechatpay import WechatPay
from services.order import aftersales, metrics, refunds, service
from services.order.config import OrderServiceSettings, follow_live_settings, live_tunables
from services.order.db import SqlOrderUnitOfWork, start_mappers, submit_attempts
from services.order.grpc_api import AfterSaleServicer, OrderServicer
from services.order.neighbours import GrpcCatalog, GrpcMembers, GrpcStock, GrpcUsers
from services.order.uow import OrderUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"
BATCH = 100

log = logging.getLogger(__name__)


def batches(what: str, step: Callable[[RoundBudget], int], interval_seconds: float, budget: RoundBudget) -> Job:
    """A scheduler over a table (orders, after-sales cases): at start and every interval (`runtime.every`), a scan
    runs `step` (one batch, one transaction) until it runs dry, the process stops or the scan's `budget` is spent
    (after its first batch). What a scan leaves is still due (handled rows no longer are): a scan that spent its
    budget is followed by the next after BACKLOG_PAUSE_SECONDS (RoundBudget.cut_short), not the whole interval. It
    beats after each scan, its bound from the budget's worst_seconds.

    Durable because it is driven by the orders table itself; replicas each run it and skip the rows
    another holds (FOR UPDATE SKIP LOCKED), so no order is handled twice.
    """
    def run(stop: threading.Event, beat: Callable[[], None]) -> None:
        def scan() -> None:
            full = True
            while full and not stop.is_set():
                full = step(budget) == BATCH
                # Even a short batch may be one the budget cut (the payment timeout stops closing prepaid orders).
                if budget.spent():
                    log.info("%s: the scan's budget is spent; the next scan goes on after a short pause", what)
                    budget.cut_short()
                    return
        every(interval_seconds, f"{what} scan", scan, budget=budget, at_start=True)(stop, beat)
    return Job(run, job_bound_seconds(interval_seconds, budget.worst_seconds))


def payment_timeout(uow: Callable[[], OrderUnitOfWork], wechat: WechatPay | None,
                    interval_seconds: float, budget: RoundBudget) -> Job:
    """O6: cancel unpaid orders past their deadline. A WeChat Pay prepay is closed first, and an order
    paid meanwhile becomes PAID instead (service.expire_prepaid); the budget stops a batch between two closes."""
    return batches("payment timeout",
                   lambda spent: service.expire_orders(uow(), wechat=wechat, batch=BATCH, budget=spent),
                   interval_seconds, budget)


def auto_confirm(uow: Callable[[], OrderUnitOfWork], settings: Callable[[], service.OrderSettings],
                 interval_seconds: float, budget: RoundBudget) -> Job:
    """O3: confirm receipt of orders shipped `auto_confirm_days` ago (the settings in force at each scan)."""
    return batches("auto-confirm", lambda _: service.auto_confirm_orders(uow(), settings(), batch=BATCH),
                   interval_seconds, budget)


def return_expiry(uow: Callable[[], OrderUnitOfWork], settings: aftersales.AfterSaleSettings,
                  interval_seconds: float, budget: RoundBudget) -> Job:
    """O4: close approved returns the shopper did not send back within `return_ship_days` (their lines freed)."""
    return batches("return expiry", lambda _: aftersales.expire_returns(uow(), settings, batch=BATCH),
                   interval_seconds, budget)


def payment_reconciliation(uow: Callable[[], OrderUnitOfWork], wechat: WechatPay,
                           interval_seconds: float, budget: RoundBudget) -> Job:
    """Every interval, ask WeChat Pay about unpaid prepaid orders, so a lost notify still ends in PAID.

    One round per interval asks, whichever replica's timer starts it (the others skip theirs); paying stays once
    under the order row's lock.
    """
    return every(interval_seconds, "payment reconciliation",
                 lambda: service.reconcile_payments(uow, wechat, interval_seconds=interval_seconds, budget=budget),
                 budget=budget)


def refund_reconciliation(uow: Callable[[], OrderUnitOfWork], payments: refunds.RefundPayments | None,
                          members: GrpcMembers, interval_seconds: float, settle_seconds: int,
                          stuck_seconds: int, budget: RoundBudget) -> Job:
    """Every interval, ask again about refunds PENDING for `settle_seconds`, so a lost refund notify (or a
    refund call that got no answer) still ends. One round per interval asks, whichever replica's timer starts it
    (the others skip theirs); settling is once per refund under its row lock. Wallet refunds are asked of the member service again as the order service itself. A WeChat Pay
    refund PENDING for `stuck_seconds` that WeChat Pay never got and refuses when sent again becomes ABNORMAL. The round
    also marks closed refunds an order pod before migration 0017 recorded paid after close (`refunds.mark_noted_refund`),
    and starts the refund of after-sales cases REFUNDING for `settle_seconds` without one (the process died between the
    case's step and its refund: `aftersales.start_unstarted_refunds`)."""
    return every(interval_seconds, "refund reconciliation",
                 lambda: refunds.reconcile_refunds(uow, payments, members, settle_seconds=settle_seconds,
                                                   stuck_seconds=stuck_seconds, interval_seconds=interval_seconds,
                                                   budget=budget),
                 budget=budget)


def wallet_reconciliation(uow: Callable[[], OrderUnitOfWork], members: GrpcMembers, interval_seconds: float,
                          settle_seconds: int) -> Job:
    """Every interval, resolve wallet payments unknown for `settle_seconds` (a lost PayWithBalance answer, a late
    charge not yet credited back): paid, credited back or forgotten, asking the member service as the order
    service. Each outcome happens once under the order row's lock, so replicas may overlap."""
    return every(interval_seconds, "wallet payment reconciliation",
                 lambda: service.reconcile_wallet_payments(uow, members, settle_seconds=settle_seconds))


def abnormal_refunds(uow: Callable[[], OrderUnitOfWork], interval_seconds: float,
                     stuck_seconds: int = refunds.STUCK_SECONDS) -> Job:
    """Every interval, export how many refunds are ABNORMAL and how long the oldest has been (staff must act on
    each: the AbnormalRefundWaiting alert reads these gauges), and how many have been PENDING for over
    `stuck_seconds` and for how long (RefundPendingStuck). Every replica reports the same numbers."""
    return every(interval_seconds, "abnormal refund gauges",
                 lambda: refunds.watch_abnormal_refunds(uow(), stuck_seconds=stuck_seconds))


def payment_watch(uow: Callable[[], OrderUnitOfWork], interval_seconds: float) -> Job:
    """Every interval, count the payment work that is stuck (unpaid orders overdue, wallet charges for staff) into
    the gauges the alerts read; every replica counts the same rows, so the alerts take the max."""
    def watch() -> None:
        backlog = service.payment_backlog(uow())
        metrics.show_payment_backlog(backlog.unpaid_overdue, backlog.wallet_charges_for_staff)
    return every(interval_seconds, "payment watch", watch)


def build_app(base: ServiceSettings) -> ServiceApp:
    settings = OrderServiceSettings.from_env(base)
    start_mappers()
    engine = make_engine(base.database_url, base.database_timeouts)
    uow = functools.partial(SqlOrderUnitOfWork, engine, "order")
    # Stock reservations and wallet refunds (also from the reconciliation job) go out as the order service.
    clients = ServiceClients(Discovery(base.consul_http_addr, Env()), settings.grpc_timeout_seconds,
                             service_token=service_identity(base))
    # Every refund it asks for (a late payment's too, from the payment paths) notifies the refund notify route.
    wechat = (WechatPay(settings.wechatpay, refund_notify_url=settings.orders.refund_notify_url)
              if settings.wechatpay else None)
    if wechat is None:  # said once at start; each WeChat payment or refund answers WECHATPAY_NOT_CONFIGURED
        log.warning("WeChat Pay is not configured (WECHATPAY_MCHID unset): orders can be paid from the wallet only")
    refund_payments = refunds.WechatRefunds(wechat, settings.orders.refund_notify_url) if wechat else None
    members = GrpcMembers(clients)
    servicer = OrderServicer(uow, GrpcCatalog(clients), GrpcStock(clients), members, GrpcUsers(clients),
                             settings.orders, wechat, refund_payments)
    # Each reconciliation and timeout scan goes on for JOB_ROUND_BUDGET_SECONDS a round, its rows' calls on top:
    # a row asks WeChat Pay or the member service up to three times (query, send again, ask), a timeout's batch
    # closes a prepay and asks how it ended; a scan of the database alone makes none.
    call = max(settings.wechatpay.timeout_seconds if settings.wechatpay else 0.0, settings.grpc_timeout_seconds)
    seconds = base.job_round_budget_seconds

    def budget(calls: int, sweeps: int = 1) -> RoundBudget:
        return round_budget(seconds, row_calls_seconds=calls * call, sweeps=sweeps)

    jobs = {"payment-timeout": payment_timeout(uow, wechat, settings.timeout_scan_seconds, budget(2)),
            "auto-confirm": auto_confirm(uow, lambda: servicer.settings, settings.auto_confirm_scan_seconds,
                                         budget(0)),
            "return-expiry": return_expiry(uow, settings.after_sales, settings.auto_confirm_scan_seconds, budget(0)),
            "refund-reconciliation": refund_reconciliation(uow, refund_payments, members,
                                                           settings.refund_reconcile_seconds,
                                                           settings.refund_settle_seconds,
                                                           settings.refund_stuck_seconds, budget(3, sweeps=3)),
            "wallet-reconciliation": wallet_reconciliation(uow, members, settings.reconcile_seconds,
                                                           settings.wallet_settle_seconds),
            "abnormal-refunds": abnormal_refunds(uow, settings.refund_reconcile_seconds,
                                                 settings.refund_stuck_seconds),
            "payment-watch": payment_watch(uow, settings.reconcile_seconds)}
    if wechat is not None:
        jobs["payment-reconciliation"] = payment_reconciliation(uow, wechat, settings.reconcile_seconds, budget(1))
    # The servicer's settings follow Consul's minimall/order/ keys (services/order/config.py LIVE_FIELDS).
    live = RuntimeConfig(Discovery(base.consul_http_addr, Env()), "order", live_tunables(settings.orders))
    jobs["live-settings"] = follow_live_settings(live, settings.orders, functools.partial(setattr, servicer, "settings"))
    after_sales = AfterSaleServicer(uow, aftersales.EngineRefunder(refund_payments, members), settings.after_sales)
    return ServiceApp(settings=base, engine=engine,
                      registrations=[registration(order_pb2, order_pb2_grpc, "OrderService", servicer),
                                     registration(after_sale_pb2, after_sale_pb2_grpc, "AfterSaleService",
                                                  after_sales)], jobs=jobs,
                      own_rows={submit_attempts: kept_with_keys(submit_attempts)})


if __name__ == "__main__":
    sys.exit(main("order", build_app, MIGRATIONS))
