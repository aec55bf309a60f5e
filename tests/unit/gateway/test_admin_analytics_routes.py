"""The analytics reports of the admin API: who may read them, and the JSON made of analytics' replies."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from mall.analytics.v1 import analytics_pb2

from services.common.errors import InvalidInput
from services.common.grpc_server import to_grpc

REPORTS = {"/api/v1/admin/analytics/overview": "GetOverview",
           "/api/v1/admin/analytics/preferences": "GetPurchasePreferences",
           "/api/v1/admin/analytics/regions": "GetRegionalDistribution",
           "/api/v1/admin/analytics/funnel": "GetFunnel",
           "/api/v1/admin/analytics/retention": "GetRetention"}


@pytest.mark.parametrize("path", REPORTS)
def test_a_shopper_is_forbidden_every_report(client: FlaskClient, bearer, clients, path: str) -> None:
    response = client.get(path, headers=bearer(roles=""))

    assert (response.status_code, getattr(clients.analytics, REPORTS[path]).calls) == (403, [])


@pytest.mark.parametrize("path", REPORTS)
def test_an_operator_reads_every_report(client: FlaskClient, bearer, path: str) -> None:
    assert client.get(path, headers=bearer(roles="operator")).status_code == 200


@pytest.mark.parametrize("path", REPORTS)
def test_a_bad_period_is_refused_by_analytics_with_its_details(client: FlaskClient, bearer, clients, rpc_error,
                                                               path: str) -> None:
    getattr(clients.analytics, REPORTS[path]).error = rpc_error(*to_grpc(InvalidInput(
        "PERIOD_TOO_LONG", "a period spans at most 366 days", details={"from": "too early"})))

    response = client.get(f"{path}?from=2024-01-01&to=2026-01-01", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        400, "PERIOD_TOO_LONG", {"from": "too early"})


def test_preferences_ask_for_the_top_ten_and_name_the_keys_by_what_they_are(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.GetPurchasePreferences.reply = analytics_pb2.GetPurchasePreferencesResponse(
        from_date="2026-11-20", to_date="2026-11-21", sales_fen=44500,
        by_category=[analytics_pb2.Sales(key="1", paid_orders=3, quantity=4, sales_fen=42000)],
        by_brand=[analytics_pb2.Sales(key="0", paid_orders=1, quantity=1, sales_fen=2500)],
        by_price_band=[analytics_pb2.Sales(key="0", paid_orders=2, quantity=4, sales_fen=14500, max_fen=5000),
                       analytics_pb2.Sales(key="100000")],
        top_products=[analytics_pb2.Sales(key="12", paid_orders=1, quantity=1, sales_fen=30000)])

    response = client.get("/api/v1/admin/analytics/preferences?from=2026-11-20&to=2026-11-21",
                          headers=bearer(roles="admin"))

    assert clients.analytics.GetPurchasePreferences.calls[0].message == analytics_pb2.GetPurchasePreferencesRequest(
        from_date="2026-11-20", to_date="2026-11-21", top=10)
    assert response.get_json() == {
        "from": "2026-11-20", "to": "2026-11-21", "sales_fen": 44500,
        "by_category": [{"category_id": 1, "paid_orders": 3, "quantity": 4, "sales_fen": 42000}],
        "by_brand": [{"brand_id": 0, "paid_orders": 1, "quantity": 1, "sales_fen": 2500}],
        "by_price_band": [{"min_fen": 0, "max_fen": 5000, "paid_orders": 2, "quantity": 4, "sales_fen": 14500},
                          {"min_fen": 100000, "max_fen": None, "paid_orders": 0, "quantity": 0, "sales_fen": 0}],
        "top_products": [{"product_id": 12, "paid_orders": 1, "quantity": 1, "sales_fen": 30000}]}


def test_regions_list_provinces_with_their_shares(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.GetRegionalDistribution.reply = analytics_pb2.GetRegionalDistributionResponse(
        from_date="2026-11-20", to_date="2026-11-21", gmv_fen=45000, provinces=[
            analytics_pb2.Region(province="广东省", paid_orders=1, gmv_fen=30000, gmv_share=0.6667),
            analytics_pb2.Region(province="", page_views=7)])

    response = client.get("/api/v1/admin/analytics/regions?from=2026-11-20&to=2026-11-21",
                          headers=bearer(roles="admin"))

    assert response.get_json() == {"from": "2026-11-20", "to": "2026-11-21", "gmv_fen": 45000, "provinces": [
        {"province": "广东省", "paid_orders": 1, "gmv_fen": 30000, "gmv_share": 0.6667, "page_views": 0},
        {"province": "", "paid_orders": 0, "gmv_fen": 0, "gmv_share": 0.0, "page_views": 7}]}


def test_funnel_has_the_period_steps_and_each_days(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.GetFunnel.reply = analytics_pb2.GetFunnelResponse(
        from_date="2026-11-20", to_date="2026-11-20",
        totals=analytics_pb2.FunnelSteps(viewed=2, added_to_cart=1, ordered=1, paid=1),
        days=[analytics_pb2.DailyFunnel(date="2026-11-20", steps=analytics_pb2.FunnelSteps(
            viewed=2, added_to_cart=1, ordered=1, paid=1))])

    response = client.get("/api/v1/admin/analytics/funnel?from=2026-11-20&to=2026-11-20",
                          headers=bearer(roles="admin"))

    steps = {"viewed": 2, "added_to_cart": 1, "ordered": 1, "paid": 1}
    assert response.get_json() == {"from": "2026-11-20", "to": "2026-11-20", **steps,
                                   "days": [{"date": "2026-11-20", **steps}]}


def test_retention_has_a_row_per_cohort_with_null_rates_not_known_yet(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.GetRetention.reply = analytics_pb2.GetRetentionResponse(
        from_date="2026-11-20", to_date="2026-11-20", cohorts=[analytics_pb2.Cohort(
            date="2026-11-20", new_users=4, d1=2, d7=1, d1_rate=0.5, d7_rate=0.25)])

    response = client.get("/api/v1/admin/analytics/retention?from=2026-11-20&to=2026-11-20",
                          headers=bearer(roles="admin"))

    assert response.get_json() == {"from": "2026-11-20", "to": "2026-11-20", "cohorts": [
        {"date": "2026-11-20", "new_users": 4, "d1": 2, "d7": 1, "d30": 0, "d1_rate": 0.5, "d7_rate": 0.25,
         "d30_rate": None}]}


# A month 13 or the year 2150 fit YYYY-MM-DD and were documented as valid, to be refused by analytics (schemathesis).
@pytest.mark.parametrize("query", ["from=", "to=2026-1-1", "from=20261101", "to=2026-11-01x", "from=2026/11/01",
                                   "from=2150-01-01", "to=1999-12-31", "from=2026-13-01", "to=2026-00-10",
                                   "from=2026-11-00", "to=2026-11-32"])
def test_a_date_not_shaped_yyyy_mm_dd_is_refused_before_analytics_is_called(client: FlaskClient, bearer, clients,
                                                                            query: str) -> None:
    response = client.get(f"/api/v1/admin/analytics/overview?{query}", headers=bearer(roles="admin"))

    assert (response.status_code, set(response.get_json()["error"]["details"]), clients.analytics.GetOverview.calls
            ) == (400, {query.split("=")[0]}, [])
