"""POST /track: what is asked of analytics, the limits on a batch, and who the views belong to."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.analytics.v1 import analytics_pb2

from gateway.sessions import SessionMarksUnavailable
from services.common import formats
from services.common.auth import Caller

TRACK = "/api/v1/track"
DEVICE = "dev-0123456789"


def view(**overrides: object) -> dict:
    return {"type": "page_view", "page": "pages/index/index", "referrer": "", "ts": "2026-11-29T10:00:00+08:00",
            "session_id": "s-1", **overrides}


@pytest.fixture
def clients(clients):  # type: ignore[no-untyped-def]
    clients.analytics.TrackPageViews.answer = lambda request: analytics_pb2.TrackPageViewsResponse(
        accepted=len(request.views))
    return clients


def test_a_batch_is_accepted_with_202_and_its_count(client: FlaskClient) -> None:
    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view(), view(page="pages/cart/cart")]})

    assert (response.status_code, response.get_json()) == (202, {"accepted": 2})


def test_the_views_are_passed_to_analytics_with_the_device_and_client_time(client: FlaskClient, clients) -> None:
    client.post(TRACK, json={"device_id": DEVICE, "events": [view(region="浙江省", referrer="pages/a/a")]})

    stamp = Timestamp()
    stamp.FromJsonString("2026-11-29T02:00:00Z")
    assert [call.message for call in clients.analytics.TrackPageViews.calls] == [analytics_pb2.TrackPageViewsRequest(
        device_id=DEVICE, views=[analytics_pb2.PageView(session_id="s-1", page="pages/index/index",
                                                        referrer="pages/a/a", client_ts=stamp, region="浙江省")])]


def test_a_view_without_a_time_is_passed_without_one(client: FlaskClient, clients) -> None:
    event = view()
    del event["ts"]

    client.post(TRACK, json={"device_id": DEVICE, "events": [event]})

    assert not clients.analytics.TrackPageViews.calls[0].message.views[0].HasField("client_ts")


def test_an_anonymous_visitor_sends_no_token_on(client: FlaskClient, clients) -> None:
    client.post(TRACK, json={"device_id": DEVICE, "events": [view()]})

    assert "authorization" not in clients.analytics.TrackPageViews.calls[0].metadata


def test_a_logged_in_shoppers_token_is_forwarded_for_analytics_to_verify(client: FlaskClient, clients, mint) -> None:
    token = mint(user_id=7)

    client.post(TRACK, json={"device_id": DEVICE, "events": [view()]}, headers={"Authorization": f"Bearer {token}"})

    assert clients.analytics.TrackPageViews.calls[0].metadata["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Basic YWRtaW46YWRtaW4="])
def test_a_bad_token_is_ignored_and_the_views_are_still_accepted_anonymously(client: FlaskClient, clients,
                                                                             authorization: str) -> None:
    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view()]},
                           headers={"Authorization": authorization})

    assert (response.status_code, "authorization" in clients.analytics.TrackPageViews.calls[0].metadata) == (202, False)


def test_an_expired_token_is_ignored_too(client: FlaskClient, clients, mint) -> None:
    token = mint(user_id=7, issued_ago=timedelta(hours=1))

    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view()]},
                           headers={"Authorization": f"Bearer {token}"})

    assert (response.status_code, "authorization" in clients.analytics.TrackPageViews.calls[0].metadata) == (202, False)


@pytest.fixture
def session_check_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(_: Caller) -> bool:
        raise SessionMarksUnavailable
    monkeypatch.setattr(app.extensions["session_marks"], "ended", unavailable)


@pytest.mark.usefixtures("session_check_down")
def test_a_staff_token_whose_session_cannot_be_checked_is_taken_as_anonymous_not_refused(
        client: FlaskClient, clients, mint) -> None:
    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view()]},
                           headers={"Authorization": f"Bearer {mint(user_id=7, roles='operator')}"})

    assert (response.status_code, ["authorization" in call.metadata for call in clients.analytics.TrackPageViews.calls]
            ) == (202, [False])


@pytest.mark.usefixtures("session_check_down")
def test_a_shoppers_token_whose_session_cannot_be_checked_is_still_forwarded(client: FlaskClient, clients,
                                                                            mint) -> None:
    token = mint(user_id=7)

    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view()]},
                           headers={"Authorization": f"Bearer {token}"})

    assert (response.status_code, clients.analytics.TrackPageViews.calls[0].metadata["authorization"]) == (
        202, f"Bearer {token}")


def refused(client: FlaskClient, clients, body: dict) -> tuple[int, set[str]]:
    response = client.post(TRACK, json=body)
    assert clients.analytics.TrackPageViews.calls == []
    return response.status_code, set(response.get_json()["error"].get("details", {}))


@pytest.mark.parametrize("region", ["", *formats.PROVINCES])
def test_a_region_is_a_province_as_addresses_name_it_or_empty(client: FlaskClient, clients, region: str) -> None:
    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view(region=region)]})

    assert (response.status_code, clients.analytics.TrackPageViews.calls[0].message.views[0].region) == (202, region)


@pytest.mark.parametrize(("short", "full"), [("上海", "上海市"), ("广东", "广东省"), ("广西", "广西壮族自治区"),
                                           ("内蒙古", "内蒙古自治区"), ("新疆", "新疆维吾尔自治区"),
                                           ("香港", "香港特别行政区")])
def test_a_short_province_name_is_passed_on_by_its_full_name(client: FlaskClient, clients, short: str,
                                                             full: str) -> None:
    response = client.post(TRACK, json={"device_id": DEVICE, "events": [view(region=short)]})

    assert (response.status_code, clients.analytics.TrackPageViews.calls[0].message.views[0].region) == (202, full)


def test_the_documented_regions_are_the_provinces_by_full_and_short_name_and_empty(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    assert schemas["TrackedEvent"]["properties"]["region"]["enum"] == [
        "", *formats.PROVINCES, *formats.PROVINCE_SHORT_NAMES]


def test_a_batch_without_a_device_id_is_refused(client: FlaskClient, clients) -> None:
    assert refused(client, clients, {"events": [view()]}) == (400, {"device_id"})


@pytest.mark.parametrize("device_id", ["short", "x" * 65, "has space 123", "设备设备设备设备设备"])
def test_a_malformed_device_id_is_refused(client: FlaskClient, clients, device_id: str) -> None:
    assert refused(client, clients, {"device_id": device_id, "events": [view()]}) == (400, {"device_id"})


def test_more_than_fifty_views_in_a_batch_are_refused(client: FlaskClient, clients) -> None:
    assert refused(client, clients, {"device_id": DEVICE, "events": [view()] * 51}) == (400, {"events"})


def test_fifty_views_in_a_batch_are_accepted(client: FlaskClient) -> None:
    assert client.post(TRACK, json={"device_id": DEVICE, "events": [view()] * 50}).get_json() == {"accepted": 50}


def test_an_empty_batch_is_refused(client: FlaskClient, clients) -> None:
    assert refused(client, clients, {"device_id": DEVICE, "events": []}) == (400, {"events"})


@pytest.mark.parametrize(("field", "value"), [("page", "p" * 257), ("referrer", "r" * 257), ("page", ""),
                                              ("session_id", "s" * 65), ("region", "r" * 33), ("region", "广东 "),
                                              ("region", "Guangdong"), ("region", "广东省 "), ("type", "click"),
                                              ("ts", "2026-11-29T10:00:00"), ("ts", "yesterday"),
                                              ("ts", "0001-01-01T00:00:00+01:00"), ("ts", "9999-12-31T23:59:59-01:00")])
def test_an_oversized_or_malformed_field_is_refused_naming_it(client: FlaskClient, clients, field: str,
                                                               value: str) -> None:
    assert refused(client, clients, {"device_id": DEVICE, "events": [view(**{field: value})]}) == (
        400, {f"events.0.{field}"})


def test_a_body_over_64_kib_is_refused_before_analytics_is_called(client: FlaskClient, clients) -> None:
    padded = [view(page="p" * 250, referrer="r" * 250, session_id="s" * 64, region="新疆维吾尔自治区")] * 50
    body = {"device_id": DEVICE, "events": padded}

    response = client.post(TRACK, data=json.dumps(body) + " " * 65536,
                           content_type="application/json")

    assert (response.status_code, response.get_json()["error"]["code"], clients.analytics.TrackPageViews.calls) == (
        413, "PAYLOAD_TOO_LARGE", [])


def test_one_device_sending_more_than_sixty_batches_a_minute_is_rate_limited(
        client: FlaskClient, clients, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.ratelimit.clock", lambda: 1_800_000_030.0)  # mid-minute: one fixed window
    statuses = [client.post(TRACK, json={"device_id": DEVICE, "events": [view()]}).status_code for _ in range(61)]
    other = client.post(TRACK, json={"device_id": "dev-other-device", "events": [view()]})

    assert (statuses.count(202), statuses[-1], other.status_code) == (60, 429, 202)
