"""The ledger exports (orders, money) from events fed through the consumer's handlers, on SQLite."""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from mall.events.v1.order_events_pb2 import LatePaymentReceived, OrderAmounts, OrderPaid
from openpyxl import load_workbook
from sqlalchemy import Engine

from services.analytics import ledgers, reports, service
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.analytics.domain import Period
from tests.fixtures.analytics_ledgers import (
    D3,
    MONEY,
    O1,
    ORDERS,
    SMALL,
    created,
    event,
    late_payment,
    late_refund,
    one,
    paid,
    paid_twice,
    plan_subscribed,
    refunded,
    shop,
)
from tests.fixtures.analytics_stream import D1, D2, at, republished, stream
from tests.unit.analytics.conftest import consume, run_reports

PERIOD = Period(D1, D2)


@pytest.fixture
def uow(sqlite_service_engine: Callable[[str], Engine]) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, sqlite_service_engine("analytics"), "analytics")


@pytest.fixture(params=[1, 2, 2000], ids=lambda n: f"pages-of-{n}")
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Read a page at a time of this size: repeats and an order's later events fall on other pages."""
    monkeypatch.setattr(ledgers, "PAGE", request.param)
    return request.param


def test_each_order_placed_in_the_period_is_one_row_with_its_amounts_and_what_became_of_it(uow, page) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]

    assert list(ledgers.order_rows(uow(), PERIOD)) == ORDERS


def test_each_payment_refund_recharge_and_withdrawal_of_the_period_is_one_signed_row(uow, page) -> None:
    delivered = shop()
    consume(uow(), delivered)  # type: ignore[arg-type]

    rows = list(ledgers.money_rows(uow(), PERIOD))

    assert [row[:-1] for row in rows] == MONEY
    assert {row[-1] for row in rows} <= {e.event_id for e in delivered}  # the event id, to trace a row back
    assert sum(row[4] for row in rows) == (1_500 + 9_600 + 3_000 - 3_000 + 50_000 + 20_000 - 20_000 - 2_500 - 20_000
                                           - 9_500 + 1_500)


def test_a_period_lists_only_its_own_days(uow) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]

    assert [row[1] for row in ledgers.order_rows(uow(), Period(D2, D3))] == ["O3", "O4", "O5"]
    assert [(row[0], row[2], row[4]) for row in ledgers.money_rows(uow(), Period(D3, D3))] == [
        ("2026-11-22", "payment", 1_500)]


@pytest.mark.parametrize(("refunded_fen", "paid_fen", "is_paid", "is_cancelled", "state"), [
    (0, 0, False, False, "pending_payment"), (0, 0, False, True, "cancelled"), (0, 9_600, True, False, "paid"),
    (2_500, 9_600, True, False, "partly_refunded"), (9_600, 9_600, True, False, "refunded"),
    (0, 9_600, True, True, "cancelled"), (2_500, 9_600, True, True, "cancelled"), (9_600, 9_600, True, True, "refunded"),
])
def test_an_orders_state_follows_its_events(refunded_fen: int, paid_fen: int, is_paid: bool, is_cancelled: bool,
                                            state: str) -> None:
    assert ledgers.order_state(paid_fen=paid_fen, refunded_fen=refunded_fen, paid=is_paid,
                               cancelled=is_cancelled, refunds=1 if refunded_fen else 0) == state


def test_points_a_refund_gives_back_are_on_its_orders_row_and_a_refund_of_0_fen_partly_refunds_it(uow) -> None:
    # O9 cost nothing to pay (a coupon and 1,000 points); 1 of its 3 units could not be supplied: its refund moved 0
    # fen and gave back 333 points. O10 was paid 5,000 fen and 200 points; 2 units were refunded, 2,000 fen and 100
    # points, and that refund was re-published under a new event id.
    free = OrderAmounts(items_total_fen=3_000, coupon_discount_fen=2_000, points_discount_fen=1_000, payable_fen=0)
    o10 = OrderAmounts(items_total_fen=5_200, points_discount_fen=200, payable_fen=5_000)
    back = refunded("O10", 10, "RF10", 2_000, "wechat", at(D2, 9, 30), points_returned=100)
    consume(uow(), [created("O9", 9, at(D1, 9), [one(3, 1_000)], free),  # type: ignore[arg-type]
                    paid("O9", 9, at(D1, 9, 1), free, "none", points_used=1_000),
                    refunded("O9", 9, "RF9", 0, "none", at(D2, 9), points_returned=333),
                    created("O10", 10, at(D1, 11), [one(4, 1_300)], o10),
                    paid("O10", 10, at(D1, 11, 1), o10, "wechat", points_used=200), back, republished(back)])

    columns = [ledgers.ORDER_COLUMNS.index(name) for name in ("order_no", "paid_fen", "points_used", "refunds",
                                                              "refunded_fen", "points_returned", "state")]
    assert [tuple(row[i] for i in columns) for row in ledgers.order_rows(uow(), PERIOD)] == [
        ("O9", 0, 1_000, 1, 0, 333, "partly_refunded"), ("O10", 5_000, 200, 1, 2_000, 100, "partly_refunded")]


def test_the_money_ledgers_totals_per_day_are_the_daily_reports(uow) -> None:
    # The analytics fixture stream: a payment re-published under a new id, a recharge delivered twice, events out
    # of order, envelopes dated when they were made (not when the facts happened).
    consume(uow(), stream())  # type: ignore[arg-type]
    sums: dict[tuple[str, str], int] = {}
    for row in ledgers.money_rows(uow(), PERIOD):
        sums[row[0], row[2]] = sums.get((row[0], row[2]), 0) + row[4]

    overview = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D2.isoformat())

    assert sums == {(day.day.isoformat(), movement): sign * day.figures[figure]
                    for day in overview.days
                    for movement, figure, sign in (("payment", "gmv_fen", 1), ("refund", "refund_fen", -1),
                                                   ("recharge", "recharge_fen", 1), ("withdrawal", "withdrawal_fen", -1))
                    if day.figures[figure]}
    assert sums == {("2026-11-20", "payment"): 10_000, ("2026-11-20", "recharge"): 50_000,
                    ("2026-11-21", "payment"): 35_000, ("2026-11-21", "refund"): -2_500}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def test_the_orders_export_writes_csv_with_empty_cells_for_what_did_not_happen(uow, tmp_path: Path) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]

    rows = reports.export(uow(), kind="orders", format="csv", period=PERIOD, path=tmp_path / "orders.csv")

    assert rows == len(ORDERS)
    assert read_csv(tmp_path / "orders.csv") == [list(ledgers.ORDER_COLUMNS),
                                                 *([("" if v is None else str(v)) for v in row] for row in ORDERS)]


def test_the_money_export_writes_xlsx_with_numbers_as_numbers(uow, tmp_path: Path) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]

    reports.export(uow(), kind="money", format="xlsx", period=PERIOD, path=tmp_path / "money.xlsx")

    sheet = load_workbook(tmp_path / "money.xlsx", read_only=True)["report"]
    header, *rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    assert header == ledgers.MONEY_COLUMNS
    assert [row[:-1] for row in rows] == MONEY


def test_a_province_a_spreadsheet_would_run_is_written_as_text(uow, tmp_path: Path) -> None:
    consume(uow(), [created("O9", 1, at(D1, 9), [one(1, 1_000)], SMALL, province="=HYPERLINK(\"x\")")])  # type: ignore[arg-type]

    reports.export(uow(), kind="orders", format="csv", period=PERIOD, path=tmp_path / "orders.csv")

    assert read_csv(tmp_path / "orders.csv")[1][4] == "'=HYPERLINK(\"x\")"


def test_a_job_reports_progress_against_the_ledger_events_of_the_period(uow, tmp_path: Path) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]
    job = reports.create_report(uow(), kind="money", format="csv", from_date=D1.isoformat(), to_date=D2.isoformat(),
                                requested_by=7)

    run_reports(reports.ReportRunner(uow, tmp_path))

    done = reports.get_report(uow(), job.id)
    assert (done.status, done.rows, done.file_name) == ("done", len(MONEY),
                                                        f"{job.id}-money-2026-11-20-2026-11-21.csv")
    with uow() as unit:  # the repeats are read (and counted for the percent), then left out
        assert unit.rollups.ledger_event_count(PERIOD, ledgers.MONEY_EVENTS) == len(MONEY) + 3  # 2 refunds, 1 plan



def test_a_fact_re_published_with_another_day_is_listed_on_the_day_the_daily_report_counts_it(uow) -> None:
    first = paid("O1", 1, at(D1, 10, 5), O1, "wechat")
    again = paid("O1", 1, at(D2, 9), O1, "wechat")  # the same payment, dated again by a replaying producer
    consume(uow(), [first, again])  # type: ignore[arg-type]

    rows = list(ledgers.money_rows(uow(), PERIOD))

    assert [(row[0], row[2], row[4], row[-1]) for row in rows] == [("2026-11-20", "payment", 9_600, first.event_id)]


def test_a_late_payment_and_its_refund_are_counted_once_apart_from_sales_and_their_refunds(uow) -> None:
    late = late_payment("O7", 4, 12_345, "wechat", "too_late", at(D1, 9))
    back = late_refund("O7", 4, 12_345, "wechat", at(D1, 9, 1))
    wallet = late_payment("O8", 5, 678, "balance", "paid_otherwise", at(D2, 9))
    wallet_back = late_refund("O8", 5, 678, "balance", at(D2, 9, 1))
    # delivered twice, and re-published under new event ids: each still counts once
    late_again, back_again = republished(late), republished(back)
    consume(uow(), [late, back, late, late_again, back, back_again, wallet, wallet_back])  # type: ignore[arg-type]

    overview = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D2.isoformat())
    rows = list(ledgers.money_rows(uow(), PERIOD))

    assert [{name: day.figures.counters.get(name, 0) for name in ("late_payments", "late_payment_fen",
                                                                  "late_refunds", "late_refund_fen")}
            for day in overview.days] == [
        {"late_payments": 1, "late_payment_fen": 12_345, "late_refunds": 1, "late_refund_fen": 12_345},
        {"late_payments": 1, "late_payment_fen": 678, "late_refunds": 1, "late_refund_fen": 678}]
    assert {name: overview.totals[name] for name in ("gmv_fen", "refunds", "refund_fen", "net_gmv_fen")} == {
        "gmv_fen": 0, "refunds": 0, "refund_fen": 0, "net_gmv_fen": 0}  # neither a sale nor a sale's refund
    columns = [ledgers.MONEY_COLUMNS.index(name) for name in ("date", "movement", "channel", "amount_fen",
                                                              "order_no", "out_trade_no", "refund_no", "reason")]
    assert [tuple(row[i] for i in columns) for row in rows] == [
        ("2026-11-20", "late_payment", "wechat", 12_345, "O7", "O7", None, "too_late"),
        ("2026-11-20", "late_payment_refund", "wechat", -12_345, "O7", "O7", "LATEO7", None),
        ("2026-11-21", "late_payment", "balance", 678, "O8", "O8", None, "paid_otherwise"),
        ("2026-11-21", "late_payment_refund", "balance", -678, "O8", "O8", "LATEWO8", None)]
    # of a fact's copies at one moment, the export lists the first in its order (day, occurred_at, event_id)
    assert [row[-1] for row in rows] == [min(late.event_id, late_again.event_id), min(back.event_id, back_again.event_id),
                                         wallet.event_id, wallet_back.event_id]


def test_each_wechat_pay_transaction_of_an_order_is_its_own_payment_or_late_payment(uow) -> None:
    # O6's first transaction (O6) was closed when its wallet payment was declined; it was paid under O6_2, then the
    # shopper's old payment page paid O6 as well (a late payment, refunded LATEO6) and a third one O6_3 too.
    payment = paid("O6", 6, at(D1, 9), SMALL, "wechat")
    moved = OrderPaid.FromString(payment.payload)
    moved.out_trade_no = "O6_2"
    payment.payload = moved.SerializeToString()
    first = late_payment("O6", 6, 1_500, "wechat", "paid_otherwise", at(D1, 9, 5))
    third = LatePaymentReceived.FromString(late_payment("O6", 6, 1_500, "wechat", "paid_otherwise", at(D1, 9, 7)).payload)
    third.out_trade_no, third.refund_no = "O6_3", "LATEO6_3"
    consume(uow(), [payment, first, event(third, "O6", at(D1, 9, 7)),  # type: ignore[arg-type]
                    late_refund("O6", 6, 1_500, "wechat", at(D1, 9, 6))])

    columns = [ledgers.MONEY_COLUMNS.index(name) for name in ("movement", "amount_fen", "out_trade_no", "refund_no")]
    assert [tuple(row[i] for i in columns) for row in ledgers.money_rows(uow(), PERIOD)] == [
        ("payment", 1_500, "O6_2", None), ("late_payment", 1_500, "O6", None),
        ("late_payment_refund", -1_500, "O6", "LATEO6"), ("late_payment", 1_500, "O6_3", None)]
    figures = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D1.isoformat()).totals
    assert [figures[name] for name in ("paid_orders", "gmv_fen", "late_payments", "late_payment_fen", "late_refunds",
                                       "late_refund_fen")] == [1, 1_500, 2, 3_000, 1, 1_500]


def test_the_daily_export_has_each_days_late_payments_and_refunds_the_money_ledger_adds_up_to(uow, tmp_path) -> None:
    # O7's late payment went back the same day; O8's was received on D1 and refunded only on D2: on D1 the shop held
    # 678 fen that were not a sale. The daily export shows it, so finance can tie the money ledger's late rows to it.
    consume(uow(), [late_payment("O7", 4, 12_345, "wechat", "too_late", at(D1, 9)),  # type: ignore[arg-type]
                    late_refund("O7", 4, 12_345, "wechat", at(D1, 9, 1)),
                    late_payment("O8", 5, 678, "wechat", "cancelled", at(D1, 23)),
                    late_refund("O8", 5, 678, "wechat", at(D2, 0, 30))])

    reports.export(uow(), kind="daily", format="csv", period=PERIOD, path=tmp_path / "daily.csv")

    header, *rows = read_csv(tmp_path / "daily.csv")
    late = [header.index(name) for name in ("date", "late_payments", "late_payment_fen", "late_refunds",
                                            "late_refund_fen")]
    assert [[row[i] for i in late] for row in rows] == [
        ["2026-11-20", "2", "13023", "1", "12345"], ["2026-11-21", "0", "0", "1", "678"], ["total", "2", "13023", "2", "13023"]]
    ledger: dict[tuple[str, str], int] = {}
    for row in ledgers.money_rows(uow(), PERIOD):
        ledger[row[0], row[2]] = ledger.get((row[0], row[2]), 0) + row[4]
    assert ledger == {("2026-11-20", "late_payment"): 13_023, ("2026-11-20", "late_payment_refund"): -12_345,
                      ("2026-11-21", "late_payment_refund"): -678}


def test_a_withdrawal_published_before_member_withdrawn_carried_its_number_leaves_those_cells_empty(uow) -> None:
    consume(uow(), shop())  # type: ignore[arg-type]

    rows = [row for row in ledgers.money_rows(uow(), PERIOD) if row[2] == "withdrawal"]

    columns = [ledgers.MONEY_COLUMNS.index(name) for name in ("channel", "amount_fen", "withdrawal_id",
                                                              "withdrawal_no", "requested_fen", "bonus_forfeited_fen")]
    assert [tuple(row[i] for i in columns) for row in rows] == [
        (None, -20_000, 7, None, None, None), ("wechat", -9_500, 8, "W8", 10_000, 1_000)]
    overview = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D2.isoformat())
    assert (overview.totals["withdrawals"], overview.totals["withdrawal_fen"]) == (2, 29_500)


def test_a_payment_whose_producer_left_its_time_unset_is_listed_at_its_envelopes_time(uow) -> None:
    undated = paid("O1", 1, at(D1, 10, 5), O1, "wechat")
    payment = OrderPaid.FromString(undated.payload)
    payment.ClearField("paid_at")
    undated.payload = payment.SerializeToString()
    consume(uow(), [undated])  # type: ignore[arg-type]

    assert [row[:3] for row in ledgers.money_rows(uow(), PERIOD)] == [
        ("2026-11-20", "2026-11-20T02:05:00+00:00", "payment")]


PLAN_FIGURES = ("plan_subscriptions", "plan_subscription_fen", "paid_orders", "gmv_fen", "refund_fen", "net_gmv_fen")


def test_a_plan_bought_with_the_wallet_is_one_plan_sale_by_its_posting_key_and_no_gmv(uow) -> None:
    monthly = plan_subscribed(2, "p1", 1_500, 23_500, at(D1, 9))
    annual = plan_subscribed(2, "p2", 14_800, 8_700, at(D2, 9), plan_id=2, plan_name="PLUS annual", days=366)
    consume(uow(), [monthly, monthly, republished(monthly), annual, republished(annual)])  # type: ignore[arg-type]

    overview = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D2.isoformat())
    columns = [ledgers.MONEY_COLUMNS.index(name) for name in (
        "date", "movement", "channel", "amount_fen", "user_id", "member_no", "wallet_balance_fen", "plan_id",
        "plan_name", "plan_expires_at", "posting_key")]
    assert [tuple(row[i] for i in columns) for row in ledgers.money_rows(uow(), PERIOD)] == [
        ("2026-11-20", "plan_subscription", "balance", 1_500, 2, "M2", 23_500, 1, "PLUS monthly",
         "2026-12-21T01:00:00+00:00", "plan:2:p1"),
        ("2026-11-21", "plan_subscription", "balance", 14_800, 2, "M2", 8_700, 2, "PLUS annual",
         "2027-11-22T01:00:00+00:00", "plan:2:p2")]
    assert [[day.figures[name] for name in PLAN_FIGURES] for day in overview.days] == [
        [1, 1_500, 0, 0, 0, 0], [1, 14_800, 0, 0, 0, 0]]
    assert overview.totals["active_users"] == 1


def test_a_plan_renewed_to_an_expiry_after_2099_is_listed_with_it(uow) -> None:
    """Renewals stack from the current expiry: the expiry is a value the row shows, not a date anything is counted on,
    so one far ahead is listed as it is (it made every money export of its period fail)."""
    days = (date(2100, 3, 1) - D1).days
    consume(uow(), [plan_subscribed(2, "p74", 14_800, 100, at(D1, 9), plan_id=2, plan_name="PLUS annual", days=days)])

    [row] = ledgers.money_rows(uow(), PERIOD)

    assert (row[ledgers.MONEY_COLUMNS.index("amount_fen")],
            row[ledgers.MONEY_COLUMNS.index("plan_expires_at")]) == (14_800, "2100-03-01T01:00:00+00:00")


def test_two_posting_keys_alike_in_their_first_64_characters_are_two_plan_sales(uow) -> None:
    # A shopper's idempotency key may be 128 characters: the posting key is longer than a counted fact's key.
    first, second = "k" * 100 + "1", "k" * 100 + "2"
    consume(uow(), [plan_subscribed(2, first, 1_500, 3_000, at(D1, 9)),  # type: ignore[arg-type]
                    plan_subscribed(2, second, 1_500, 1_500, at(D1, 10))])

    day = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D1.isoformat()).days[0].figures
    assert (day["plan_subscriptions"], day["plan_subscription_fen"]) == (2, 3_000)
    assert [row[ledgers.MONEY_COLUMNS.index("posting_key")] for row in ledgers.money_rows(uow(), PERIOD)] == [
        f"plan:2:{first}", f"plan:2:{second}"]


def test_the_daily_export_ends_with_each_days_plan_sales_the_money_ledger_adds_up_to(uow, tmp_path) -> None:
    consume(uow(), [plan_subscribed(2, "p1", 1_500, 23_500, at(D1, 9)),  # type: ignore[arg-type]
                    plan_subscribed(3, "p1", 1_500, 500, at(D1, 23, 59)),
                    plan_subscribed(2, "p2", 14_800, 8_700, at(D2, 0, 1), plan_id=2, plan_name="PLUS annual",
                                    days=366)])

    reports.export(uow(), kind="daily", format="csv", period=PERIOD, path=tmp_path / "daily.csv")

    header, *rows = read_csv(tmp_path / "daily.csv")
    plans = [header.index(name) for name in ("date", "plan_subscriptions", "plan_subscription_fen")]
    assert plans[1:] == [len(reports.OVERVIEW_COLUMNS) + len(reports.LATE_COLUMNS) + n for n in (1, 2)]  # after them
    assert [[row[i] for i in plans] for row in rows] == [
        ["2026-11-20", "2", "3000"], ["2026-11-21", "1", "14800"], ["total", "3", "17800"]]
    ledger: dict[tuple[str, str], int] = {}
    for row in ledgers.money_rows(uow(), PERIOD):
        ledger[row[0], row[2]] = ledger.get((row[0], row[2]), 0) + row[4]
    assert ledger == {("2026-11-20", "plan_subscription"): 3_000, ("2026-11-21", "plan_subscription"): 14_800}


def test_a_refund_paid_twice_is_one_outflow_by_its_refund_number_and_moves_no_sales_figure(uow) -> None:
    # O1 was paid 9,600 and refunded 2,500 by RF1; RF0, closed here before, was paid by WeChat Pay after all: 2,500
    # went out twice. Delivered twice and re-published under a new event id, it is one outflow.
    twice = paid_twice("O1", 1, "RF0", 2_500, at(D2, 16))
    consume(uow(), [created("O1", 1, at(D1, 10), [one(2, 4_000), one(1, 2_500)], O1),  # type: ignore[arg-type]
                    paid("O1", 1, at(D1, 10, 5), O1, "wechat"), refunded("O1", 1, "RF1", 2_500, "wechat", at(D2, 15)),
                    twice, twice, republished(twice)])

    overview = service.get_overview(uow(), from_date=D1.isoformat(), to_date=D2.isoformat())
    columns = [ledgers.MONEY_COLUMNS.index(name) for name in (
        "date", "occurred_at", "movement", "channel", "amount_fen", "user_id", "order_no", "refund_no")]
    assert [tuple(row[i] for i in columns) for row in ledgers.money_rows(uow(), PERIOD)] == [
        ("2026-11-20", "2026-11-20T02:05:00+00:00", "payment", "wechat", 9_600, 1, "O1", None),
        ("2026-11-21", "2026-11-21T07:00:00+00:00", "refund", "wechat", -2_500, 1, "O1", "RF1"),
        ("2026-11-21", "2026-11-21T08:00:00+00:00", "refund_paid_twice", "wechat", -2_500, 1, "O1", "RF0")]
    assert [overview.totals[name] for name in ("gmv_fen", "refunds", "refund_fen", "net_gmv_fen", "refunds_paid_twice",
                                               "refund_paid_twice_fen")] == [9_600, 1, 2_500, 7_100, 1, 2_500]
    assert [row[ledgers.ORDER_COLUMNS.index("refunded_fen")] for row in ledgers.order_rows(uow(), PERIOD)] == [2_500]


def test_the_daily_export_ends_with_each_days_refunds_paid_twice_the_money_ledger_adds_up_to(uow, tmp_path) -> None:
    consume(uow(), [paid_twice("O1", 1, "RF0", 2_500, at(D1, 9)),  # type: ignore[arg-type]
                    paid_twice("O2", 2, "RF9", 1_234, at(D2, 9))])

    reports.export(uow(), kind="daily", format="csv", period=PERIOD, path=tmp_path / "daily.csv")

    header, *rows = read_csv(tmp_path / "daily.csv")
    assert header[-2:] == ["refunds_paid_twice", "refund_paid_twice_fen"]
    assert [[row[0], *row[-2:]] for row in rows] == [
        ["2026-11-20", "1", "2500"], ["2026-11-21", "1", "1234"], ["total", "2", "3734"]]
    assert [(row[0], row[2], row[4]) for row in ledgers.money_rows(uow(), PERIOD)] == [
        ("2026-11-20", "refund_paid_twice", -2_500), ("2026-11-21", "refund_paid_twice", -1_234)]
