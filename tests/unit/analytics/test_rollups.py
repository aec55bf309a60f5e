"""A synthetic stream with known answers through the analytics handlers, on the in-memory rollups."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.member_events_pb2 import MemberWithdrawn
from mall.events.v1.tracking_events_pb2 import PageViewed

from services.analytics import service
from services.analytics.domain import FunnelSteps, Region, Sales
from services.common.events import InvalidEvent, timestamp
from tests.fixtures.analytics_stream import (
    D1,
    D2,
    EXPECTED_D1,
    EXPECTED_D2,
    EXPECTED_TOTALS,
    at,
    cart_added,
    envelope,
    page_view,
    product_viewed,
    republished,
    stream,
)
from tests.unit.analytics.conftest import FakeAnalyticsUnitOfWork, consume

PERIOD = {"from_date": D1.isoformat(), "to_date": D2.isoformat()}


@pytest.fixture
def counted(uow: FakeAnalyticsUnitOfWork) -> FakeAnalyticsUnitOfWork:
    consume(uow, stream())
    return uow


def test_overview_counts_each_day_of_the_stream_exactly(counted: FakeAnalyticsUnitOfWork) -> None:
    overview = service.get_overview(counted, **PERIOD)

    assert [(d.day, d.figures.as_dict()) for d in overview.days] == [(D1, EXPECTED_D1), (D2, EXPECTED_D2)]


def test_period_totals_count_visitors_sessions_and_shoppers_once_across_days(counted: FakeAnalyticsUnitOfWork) -> None:
    assert service.get_overview(counted, **PERIOD).totals.as_dict() == EXPECTED_TOTALS


def test_any_arrival_order_gives_the_same_figures(uow: FakeAnalyticsUnitOfWork) -> None:
    shuffled = stream()
    random.Random(12).shuffle(shuffled)

    consume(uow, shuffled)

    assert service.get_overview(uow, **PERIOD).totals.as_dict() == EXPECTED_TOTALS


@pytest.mark.parametrize("batch_size", [2, 5, 17, 1000])
def test_batches_of_any_size_in_any_order_give_the_figures_of_one_event_at_a_time(batch_size: int) -> None:
    one_by_one, batched, events = FakeAnalyticsUnitOfWork(), FakeAnalyticsUnitOfWork(), stream()
    consume(one_by_one, events)
    shuffled = events * 2  # every event delivered twice, the copies inside and across batches
    random.Random(batch_size).shuffle(shuffled)

    consume(batched, shuffled, batch_size=batch_size)

    assert reports(batched) == reports(one_by_one)


def reports(uow: FakeAnalyticsUnitOfWork) -> list[object]:
    return [service.get_overview(uow, **PERIOD), service.get_funnel(uow, **PERIOD),
            service.get_retention(uow, **PERIOD, today=D2 + timedelta(days=40)),
            service.get_purchase_preferences(uow, **PERIOD), service.get_regional_distribution(uow, **PERIOD),
            uow.rollups.raw]


def test_the_whole_stream_delivered_twice_counts_once(uow: FakeAnalyticsUnitOfWork) -> None:
    events = stream()
    processed: set[str] = set()

    consume(uow, events, processed)
    consume(uow, events, processed)

    assert service.get_overview(uow, **PERIOD).totals.as_dict() == EXPECTED_TOTALS


def test_a_business_fact_republished_under_new_event_ids_counts_once(uow: FakeAnalyticsUnitOfWork) -> None:
    events = stream()
    # Page and product views and cart additions have no business key: they are deduplicated by event id only.
    again = [republished(e) for e in events
             if e.event_type not in ("page-viewed", "product-viewed", "cart-item-added")]

    consume(uow, [*events, *again])

    assert service.get_overview(uow, **PERIOD).totals.as_dict() == EXPECTED_TOTALS


def test_a_view_at_ten_past_midnight_in_shanghai_counts_on_the_shanghai_day(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, [page_view("dev-A", "s3", at(D2, 0, 10))])  # 16:10 UTC on D1

    days = service.get_overview(uow, **PERIOD).days

    assert [(d.day, d.figures["page_views"]) for d in days] == [(D1, 0), (D2, 1)]


def test_every_event_id_is_kept_raw_once_on_its_shop_day(uow: FakeAnalyticsUnitOfWork) -> None:
    events = stream()

    consume(uow, events)

    assert {event_id: day for event_id, (_, day) in uow.rollups.raw.items()}.keys() == {e.event_id for e in events}
    assert [day for _, day in uow.rollups.raw.values()].count(D1) == 13


def test_purchase_preferences_split_item_sales_by_category_brand_band_and_product(
        counted: FakeAnalyticsUnitOfWork) -> None:
    found = service.get_purchase_preferences(counted, **PERIOD, top=2)

    assert (found.sales_fen, found.by_category, found.by_brand, found.top_products) == (44500, [
        Sales("1", paid_orders=3, quantity=4, sales_fen=42000), Sales("2", paid_orders=1, quantity=1, sales_fen=2500),
    ], [
        Sales("2", paid_orders=2, quantity=2, sales_fen=32500), Sales("1", paid_orders=2, quantity=3, sales_fen=12000),
    ], [
        Sales("12", paid_orders=1, quantity=1, sales_fen=30000), Sales("10", paid_orders=2, quantity=3, sales_fen=12000),
    ])


def test_price_bands_list_every_band_lowest_first(counted: FakeAnalyticsUnitOfWork) -> None:
    bands = service.get_purchase_preferences(counted, **PERIOD).by_price_band

    assert [(b.key, b.max_fen, b.paid_orders, b.quantity, b.sales_fen) for b in bands] == [
        ("0", 5000, 2, 4, 14500), ("5000", 10000, 0, 0, 0), ("10000", 20000, 0, 0, 0),
        ("20000", 50000, 1, 1, 30000), ("50000", 100000, 0, 0, 0), ("100000", 0, 0, 0, 0)]


def test_provinces_have_their_share_of_gmv_and_visitor_page_views(counted: FakeAnalyticsUnitOfWork) -> None:
    found = service.get_regional_distribution(counted, **PERIOD)

    assert (found.gmv_fen, found.provinces) == (45000, [
        Region("广东省", paid_orders=1, gmv_fen=30000, gmv_share=0.6667, page_views=0),
        Region("浙江省", paid_orders=2, gmv_fen=15000, gmv_share=0.3333, page_views=2),
        Region("", paid_orders=0, gmv_fen=0, gmv_share=0.0, page_views=7)])


def test_funnel_counts_a_step_only_for_shoppers_who_took_the_steps_before(counted: FakeAnalyticsUnitOfWork) -> None:
    found = service.get_funnel(counted, **PERIOD)

    # D2: user 1 viewed a page, user 3 only a product (product-viewed); user 3 ordered and paid without a cart.
    assert (found.totals, found.days) == (FunnelSteps(viewed=3, added_to_cart=1, ordered=1, paid=1), [
        (D1, FunnelSteps(viewed=2, added_to_cart=1, ordered=1, paid=1)),
        (D2, FunnelSteps(viewed=2, added_to_cart=0, ordered=0, paid=0))])


def test_reports_of_a_period_without_events_are_zero(counted: FakeAnalyticsUnitOfWork) -> None:
    overview = service.get_overview(counted, from_date="2026-10-01", to_date="2026-10-02")

    assert (overview.totals.as_dict(), service.get_funnel(counted, from_date="2026-10-01", to_date="2026-10-02").totals
            ) == (dict.fromkeys(EXPECTED_TOTALS, 0), FunnelSteps())


@pytest.mark.parametrize("seconds", [datetime(2150, 1, 1, tzinfo=UTC).timestamp(), -62135596800, 253402300799])
def test_an_event_dated_outside_the_shops_years_can_never_apply(uow: FakeAnalyticsUnitOfWork, seconds: float) -> None:
    envelope = page_view("dev-A", "s1", at(D1, 10))
    event = PageViewed.FromString(envelope.payload)
    event.viewed_at.seconds = int(seconds)
    envelope.payload = event.SerializeToString()

    with pytest.raises(InvalidEvent, match="dated outside"):
        consume(uow, [envelope])

    assert uow.rollups.daily == {}


def test_a_product_view_alone_puts_a_shopper_at_the_funnels_first_step(uow: FakeAnalyticsUnitOfWork) -> None:
    consume(uow, [product_viewed(5, at(D1, 10), 12), cart_added(5, at(D1, 11), 12)])

    overview = service.get_overview(uow, from_date=D1.isoformat(), to_date=D1.isoformat())
    assert service.get_funnel(uow, from_date=D1.isoformat(), to_date=D1.isoformat()).totals == FunnelSteps(
        viewed=1, added_to_cart=1)
    assert {name: overview.totals[name] for name in ("product_views", "page_views", "active_users")} == {
        "product_views": 1, "page_views": 0, "active_users": 1}


def test_an_anonymous_product_view_is_refused(uow: FakeAnalyticsUnitOfWork) -> None:
    with pytest.raises(InvalidEvent):
        consume(uow, [product_viewed(0, at(D1, 10), 12)])


def test_a_withdrawal_without_its_id_is_refused_rather_than_counted_as_another_ones_repeat(
        uow: FakeAnalyticsUnitOfWork) -> None:
    counted = MemberWithdrawn(user_id=5, member_no="M5", withdrawal_id=7, amount_fen=1_000)
    counted.withdrawn_at.CopyFrom(timestamp(at(D1, 10)))
    consume(uow, [envelope(counted)])
    no_id = MemberWithdrawn(user_id=6, member_no="M6", amount_fen=2_500)
    no_id.withdrawn_at.CopyFrom(timestamp(at(D1, 11)))
    unnamed = MemberWithdrawn(user_id=7, member_no="M7", amount_fen=4_000)
    unnamed.withdrawn_at.CopyFrom(timestamp(at(D1, 12)))

    with pytest.raises(InvalidEvent, match="without a withdrawal id"):
        consume(uow, [envelope(no_id)])
    with pytest.raises(InvalidEvent, match="without a withdrawal id"):
        consume(uow, [envelope(unnamed)])

    assert {name: value for (day, name), value in uow.rollups.daily.items() if day == D1} == {
        "withdrawals": 1, "withdrawal_fen": 1_000}
