"""Tracked page views: each becomes a page-viewed event in one transaction, counted at a plausible time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.analytics import service
from services.analytics.domain import plausible_view_time
from services.analytics.service import PageViewInput
from services.common.errors import InvalidInput
from tests.unit.analytics.conftest import FakeAnalyticsUnitOfWork

RECEIVED = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def views(n: int, client_ts: datetime | None = RECEIVED) -> list[PageViewInput]:
    return [PageViewInput(f"s{n}", f"pages/p{i}/p{i}", "", client_ts, "") for i in range(n)]


def test_every_view_is_published_keyed_by_the_device_in_one_commit(uow: FakeAnalyticsUnitOfWork) -> None:
    accepted = service.track_page_views(uow, device_id="dev-1", user_id=7, views=views(3), now=RECEIVED)

    assert (accepted, uow.commits) == (3, 1)
    assert [(e.event_type, e.aggregate_id, e.payload.user_id, e.payload.page) for e in uow.published] == [
        ("page-viewed", "dev-1", 7, f"pages/p{i}/p{i}") for i in range(3)]
    assert all(e.payload.received_at.ToDatetime(tzinfo=UTC) == RECEIVED for e in uow.published)


@pytest.mark.parametrize("count", [0, 51])
def test_a_batch_of_none_or_more_than_fifty_is_refused_and_nothing_published(uow: FakeAnalyticsUnitOfWork,
                                                                               count: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.track_page_views(uow, device_id="dev-1", user_id=0, views=views(count), now=RECEIVED)

    assert (raised.value.code, uow.published) == ("BATCH_SIZE_INVALID", [])


@pytest.mark.parametrize("region", ["广东", "Guangdong", "=HYPERLINK(1)", "广东省 "])
def test_a_region_that_is_not_a_province_is_refused_naming_the_view_and_nothing_published(
        uow: FakeAnalyticsUnitOfWork, region: str) -> None:
    batch = [PageViewInput("s1", "pages/a/a", "", RECEIVED, "广东省"), PageViewInput("s1", "pages/b/b", "", RECEIVED, region)]

    with pytest.raises(InvalidInput) as raised:
        service.track_page_views(uow, device_id="dev-1", user_id=0, views=batch, now=RECEIVED)

    assert (raised.value.code, list(raised.value.details), uow.published) == (
        "REGION_INVALID", ["views.1.region"], [])


def test_a_province_or_no_region_is_kept_as_sent(uow: FakeAnalyticsUnitOfWork) -> None:
    batch = [PageViewInput("s1", "pages/a/a", "", RECEIVED, region) for region in ("浙江省", "", "澳门特别行政区")]

    service.track_page_views(uow, device_id="dev-1", user_id=0, views=batch, now=RECEIVED)

    assert [e.payload.region for e in uow.published] == ["浙江省", "", "澳门特别行政区"]


def test_a_batch_without_a_device_is_refused(uow: FakeAnalyticsUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.track_page_views(uow, device_id="", user_id=0, views=views(1), now=RECEIVED)

    assert raised.value.code == "DEVICE_ID_REQUIRED"


@pytest.mark.parametrize(("client_ts", "counted_at"), [
    (RECEIVED - timedelta(hours=23), RECEIVED - timedelta(hours=23)),    # queued offline for a while
    (RECEIVED + timedelta(minutes=5), RECEIVED + timedelta(minutes=5)),  # a clock a little fast
    (RECEIVED - timedelta(hours=25), RECEIVED),                          # too old to trust
    (RECEIVED + timedelta(minutes=6), RECEIVED),                         # from the future
    (datetime(1970, 1, 1, tzinfo=UTC), RECEIVED),
    (None, RECEIVED),
])
def test_a_view_counts_at_the_device_time_only_when_plausible(client_ts: datetime | None,
                                                              counted_at: datetime) -> None:
    assert plausible_view_time(client_ts, RECEIVED) == counted_at


def test_the_published_view_carries_both_times_and_the_one_counted(uow: FakeAnalyticsUnitOfWork) -> None:
    far_past = datetime(2020, 1, 1, tzinfo=UTC)

    service.track_page_views(uow, device_id="dev-1", user_id=0, views=views(1, far_past), now=RECEIVED)

    event = uow.published[0].payload
    assert (event.client_ts.ToDatetime(tzinfo=UTC), event.viewed_at.ToDatetime(tzinfo=UTC)) == (far_past, RECEIVED)


def test_a_phone_or_id_number_in_a_page_path_is_kept_masked(uow: FakeAnalyticsUnitOfWork) -> None:
    # Page paths carry the mini-program's query strings; a share link may hold a phone number. What is kept (raw
    # events, the events export, backups) is for analysts: the number is masked before it is written.
    shared = PageViewInput("s1", "pages/share/share?from=13800138000&id=5", "pages/me/me?id=110101199003071234",
                           RECEIVED, "")

    service.track_page_views(uow, device_id="dev-1", user_id=0, views=[shared], now=RECEIVED)

    event = uow.published[0].payload
    assert (event.page, event.referrer) == ("pages/share/share?from=138****8000&id=5",
                                            "pages/me/me?id=1101**********1234")
