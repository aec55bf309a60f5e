"""The /admin/ console's reports in headless Chromium: staff log in and see the admin API's figures drawn.

The gateway runs on a local port with the fake services, which answer a week of figures (the browser, the page and
its screenshots: tests/fixtures/browser.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.protobuf.timestamp_pb2 import Timestamp
from mall.analytics.v1 import analytics_pb2
from mall.product.v1 import product_pb2

from tests.fixtures.fake_services import FakeServices

DAYS = [date(2026, 11, 15) + timedelta(days=n) for n in range(7)]
AT = Timestamp(seconds=1_764_400_000)  # 2025-11-29T07:06:40Z
LABELS = "els => els.map(e => e.textContent)"
NOT_FOUND = "Failed to load resource: the server responded with a status of 404 (NOT FOUND)"
TITLES = "els => els.map(e => e.querySelector('title').textContent.split(':')[0])"


def figures(n: int) -> analytics_pb2.Figures:
    paid = 3 + n
    return analytics_pb2.Figures(
        page_views=120 + 17 * n, unique_visitors=40 + 3 * n, visits=55 + 4 * n, new_users=5 + n, active_users=20 + n,
        orders=paid + 2, paid_orders=paid, paying_users=paid - 1, gmv_fen=paid * 12_345, refunds=1, refund_fen=2_000,
        net_gmv_fen=paid * 12_345 - 2_000, average_order_value_fen=12_345, cancelled_orders=1, recharges=2,
        recharge_fen=50_000)


def sales(key: str, n: int, **more: int) -> analytics_pb2.Sales:
    return analytics_pb2.Sales(key=key, paid_orders=n, quantity=2 * n, sales_fen=n * 9_900, **more)


@pytest.fixture
def week(clients: FakeServices) -> FakeServices:
    """The fake analytics service answers a week of figures."""
    period = {"from_date": DAYS[0].isoformat(), "to_date": DAYS[-1].isoformat()}
    totals = figures(10)
    clients.analytics.GetOverview.reply = analytics_pb2.GetOverviewResponse(
        **period, totals=totals,
        days=[analytics_pb2.DailyOverview(date=d.isoformat(), figures=figures(n)) for n, d in enumerate(DAYS)])
    clients.analytics.GetPurchasePreferences.reply = analytics_pb2.GetPurchasePreferencesResponse(
        **period, sales_fen=500_000, by_category=[sales("1", 9), sales("2", 4)], by_brand=[sales("3", 7), sales("0", 2)],
        by_price_band=[sales("0", 3, max_fen=5_000), sales("5000", 6, max_fen=10_000), sales("100000", 0)],
        top_products=[sales("12", 5), sales("10", 3)])
    clients.analytics.GetRegionalDistribution.reply = analytics_pb2.GetRegionalDistributionResponse(
        **period, gmv_fen=90_000, provinces=[
            analytics_pb2.Region(province="广东省", paid_orders=4, gmv_fen=60_000, gmv_share=0.6667, page_views=300),
            analytics_pb2.Region(province="浙江省", paid_orders=2, gmv_fen=30_000, gmv_share=0.3333, page_views=90),
            analytics_pb2.Region(province="", page_views=40)])
    clients.analytics.GetFunnel.reply = analytics_pb2.GetFunnelResponse(
        **period, totals=analytics_pb2.FunnelSteps(viewed=80, added_to_cart=30, ordered=12, paid=9),
        days=[analytics_pb2.DailyFunnel(date=d.isoformat(), steps=analytics_pb2.FunnelSteps(viewed=10))
              for d in DAYS])
    clients.analytics.GetRetention.reply = analytics_pb2.GetRetentionResponse(**period, cohorts=[
        analytics_pb2.Cohort(date=d.isoformat(), new_users=10, d1=4, d7=2, d30=0, d1_rate=0.4, d7_rate=0.2)
        for d in DAYS])
    clients.product.GetAdminProduct.answer = lambda message: product(message.id, f"商品{message.id}")
    return clients


def product(product_id: int, name: str) -> product_pb2.Product:
    return product_pb2.Product(id=product_id, name=name, status="APPROVED")


def test_staff_log_in_and_see_the_overview_cards_equal_to_the_api(page: Any, gateway_url: str, log_in_as,
                                                                  week) -> None:
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")

    cards = {card.get_attribute("data-figure"): (int(card.get_attribute("data-value")), card.inner_text())
             for card in page.query_selector_all("#cards .card")}
    token = page.evaluate("sessionStorage.getItem('access_token')")
    query = page.evaluate("document.body.dataset.loaded")
    api = requests.get(f"{gateway_url}/api/v1/admin/analytics/overview?{query}", timeout=10,
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert {name: value for name, (value, _) in cards.items()} == {name: api[name] for name in cards}
    assert len(cards) == 14 and api["page_views"] == 290
    assert cards["gmv_fen"][1].splitlines() == ["GMV", "¥1,604.85"]
    assert cards["page_views"][1].splitlines() == ["Page views", "290"]
    assert page.errors == []


def test_the_charts_draw_every_report(page: Any, log_in_as, week) -> None:
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")

    lines = page.eval_on_selector_all("#chart-traffic polyline", "els => els.map(e => e.dataset.series)")
    points = page.eval_on_selector("#chart-gmv polyline", "e => e.getAttribute('points').split(' ').length")
    provinces = page.eval_on_selector_all("#regions rect", "els => els.map(e => Number(e.dataset.value))")
    funnel = page.eval_on_selector_all("#funnel .bar-text", "els => els.map(e => e.textContent)")
    retention = page.eval_on_selector_all("#retention tr", "rows => rows.map(r => r.innerText.split('\\t'))")
    assert lines == ["page_views", "unique_visitors", "visits", "active_users"] and points == len(DAYS)
    assert provinces == [60_000, 30_000]
    assert funnel == ["80", "30 (37.5%)", "12 (40.0%)", "9 (75.0%)"]
    assert retention[1] == [DAYS[0].isoformat(), "10", "40.0%", "20.0%", "–"] and len(retention) == 1 + len(DAYS)
    assert page.eval_on_selector_all("#by-category rect", "els => els.length") == 2
    assert page.errors == []


def test_a_shopper_cannot_use_the_dashboard(page: Any, log_in_as, week) -> None:
    log_in_as("shopper")

    page.wait_for_selector("#login-error:not(:empty)")
    assert "not staff" in page.inner_text("#login-error")
    assert page.is_hidden("#dashboard-view") and week.analytics.GetOverview.calls == []
    assert [call.message.refresh_token for call in week.user.Logout.calls] == ["refresh"]  # its session ended, not left live


def test_an_export_button_queues_the_job_follows_it_and_downloads_the_file(page: Any, log_in_as, week) -> None:
    content = "date,page_views\r\n2026-11-15,120\r\n".encode()
    done = analytics_pb2.Report(id=3, kind="funnel", format="csv", from_date=DAYS[0].isoformat(),
                                to_date=DAYS[-1].isoformat(), status="done", percent=100, rows=1,
                                size_bytes=len(content), file_name="3-funnel.csv")
    week.analytics.CreateReport.reply = analytics_pb2.Report(id=3, kind="funnel", format="csv", status="queued")
    week.analytics.GetReport.reply = done
    week.analytics.GetReportChunk.answer = lambda m: analytics_pb2.GetReportChunkResponse(
        report=done, data=content[m.offset:])
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")
    page.select_option("#export-kind", "funnel")
    page.select_option("#export-format", "csv")

    with page.expect_download() as download:
        page.click("#export-form button[type=submit]")

    assert Path(download.value.path()).read_bytes() == content
    assert download.value.suggested_filename == f"funnel-{DAYS[0]}-{DAYS[-1]}.csv"
    request = week.analytics.CreateReport.calls[0].message
    assert (request.kind, request.format, request.from_date, request.to_date) == (
        "funnel", "csv", page.input_value("#from"), page.input_value("#to"))
    assert page.errors == []


def test_a_period_in_which_no_one_registered_says_so_in_place_of_the_retention_table(
        page: Any, log_in_as, week) -> None:
    week.analytics.GetRetention.reply = analytics_pb2.GetRetentionResponse(
        from_date=DAYS[0].isoformat(), to_date=DAYS[-1].isoformat(),
        cohorts=[analytics_pb2.Cohort(date=d.isoformat(), new_users=0) for d in DAYS])
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")

    assert page.inner_text("#retention") == "No one registered in this period."
    assert page.query_selector("#retention table") is None


@pytest.mark.parametrize(("role", "offered"), [("operator", False), ("finance", True), ("admin", True)])
def test_only_admin_and_finance_are_offered_the_exports_of_shoppers_wallets(page: Any, log_in_as, week, role: str,
                                                                           offered: bool) -> None:
    log_in_as(role)
    page.wait_for_selector("body[data-loaded]")

    options = page.eval_on_selector_all("#export-kind option", "els => els.map(e => [e.value, !e.hidden && !e.disabled])")
    assert [kind for kind, shown in options if not shown] == ([] if offered else ["events", "money"])
    assert page.errors == []


@pytest.fixture
def catalogue(week: FakeServices, rpc_error) -> FakeServices:  # type: ignore[no-untyped-def]
    """The fake product service names category 2 (under 1), brand 3 and product 12; product 10 was deleted."""
    week.product.ListCategories.reply = product_pb2.ListCategoriesResponse(items=[product_pb2.Category(
        id=1, name="<b>茶</b>", children=[product_pb2.Category(id=2, name="绿茶")])])
    week.product.ListBrands.reply = product_pb2.ListBrandsResponse(items=[product_pb2.Brand(id=3, name="西湖")])

    def named(message: product_pb2.ProductRef) -> product_pb2.Product:
        if message.id != 12:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "no such product")
        return product(12, "西湖龙井明前特级新茶礼盒装")
    week.product.GetAdminProduct.answer = week.product.ViewProduct.answer = named
    return week


def test_the_preferences_show_the_names_of_categories_brands_and_products_and_the_id_of_a_deleted_product(
        page: Any, log_in_as, catalogue: FakeServices) -> None:
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")

    assert page.eval_on_selector_all("#by-category text.label", LABELS) == ["<b>茶</b>", "绿茶"]
    assert page.eval_on_selector_all("#by-brand text.label", LABELS) == ["西湖", "No brand"]
    assert page.eval_on_selector_all("#top-products text.label", LABELS) == ["西湖龙井明前特级新茶…", "Product 10"]
    assert page.eval_on_selector_all("#top-products rect", TITLES) == ["西湖龙井明前特级新茶礼盒装", "Product 10"]
    assert sorted(call.message.id for call in catalogue.product.GetAdminProduct.calls) == [10, 12]
    assert catalogue.product.ViewProduct.calls == []
    assert page.errors == [NOT_FOUND]


def test_finance_read_product_names_from_the_shop_without_their_token(page: Any, log_in_as,
                                                                     catalogue: FakeServices) -> None:
    log_in_as("finance")
    page.wait_for_selector("body[data-loaded]")

    assert page.eval_on_selector_all("#top-products text.label", LABELS) == ["西湖龙井明前特级新茶…", "Product 10"]
    assert catalogue.product.GetAdminProduct.calls == []
    views = catalogue.product.ViewProduct.calls
    assert sorted(call.message.id for call in views) == [10, 12]
    assert all("authorization" not in call.metadata for call in views)  # no staff member's view recorded
    assert page.errors == [NOT_FOUND]


def report(report_id: int, status: str, **fields: Any) -> analytics_pb2.Report:
    return analytics_pb2.Report(id=report_id, kind="orders", format="xlsx", from_date=DAYS[0].isoformat(),
                                to_date=DAYS[-1].isoformat(), status=status, created_at=AT, **fields)


def test_after_a_reload_the_exports_list_my_jobs_follows_the_one_running_and_downloads_a_done_one(
        page: Any, log_in_as, week: FakeServices) -> None:
    content = b"PK-not-really-xlsx"
    done = report(8, "done", percent=100, rows=42, size_bytes=len(content), file_name="8-orders.xlsx")
    week.analytics.GetReport.reply = report(9, "done", percent=100, rows=2500, size_bytes=1)
    week.analytics.GetReportChunk.answer = lambda m: analytics_pb2.GetReportChunkResponse(
        report=done, data=content[m.offset:])
    log_in_as("admin")
    page.wait_for_selector("#report-count[data-loads='1']", state="attached")  # none yet
    week.analytics.ListReports.reply = analytics_pb2.ListReportsResponse(total=3, reports=[
        report(9, "running", percent=40, rows=1000), done, report(7, "failed", error="report 7 failed")])

    page.reload()
    page.wait_for_selector("#reports tr[data-report-id='9']")
    listed = page.eval_on_selector_all("#reports tr[data-report-id]", "rows => rows.map(r => [...r.cells].slice(0, 5)"
                                                                      ".map(c => c.innerText))")
    page.wait_for_selector("#reports tr[data-report-id='9'][data-status='done'] button")
    with page.expect_download() as download:
        page.click("#reports tr[data-report-id='8'] button")

    period = f"{DAYS[0]}–{DAYS[-1]}"
    assert listed == [["9", f"Orders ledger {period} (xlsx)", "running 40%", "1,000", "2025-11-29 07:06:40Z"],
                      ["8", f"Orders ledger {period} (xlsx)", "done", "42", "2025-11-29 07:06:40Z"],
                      ["7", f"Orders ledger {period} (xlsx)", "failed: report 7 failed", "0", "2025-11-29 07:06:40Z"]]
    assert page.inner_text("#report-count") == "3 exports"
    assert Path(download.value.path()).read_bytes() == content
    assert download.value.suggested_filename == f"orders-{DAYS[0]}-{DAYS[-1]}.xlsx"
    assert (week.analytics.ListReports.calls[-1].message.offset, week.analytics.ListReports.calls[-1].message.limit) == (
        0, 20)
    assert [call.message.id for call in week.analytics.GetReport.calls] == [9]  # only the one under way, once done
    assert week.analytics.GetReportChunk.calls[0].message.id == 8  # downloaded when asked, not when it finished
    assert page.errors == []
