"""Tracking: the mini-program's page views, accepted in batches for analytics."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, request
from mall.analytics.v1 import analytics_pb2
from mall.analytics.v1.analytics_pb2_grpc import AnalyticsServiceStub
from pydantic import AwareDatetime, Field

from gateway.api import TOLERANT, Body, ProvinceOrEmpty, Reply, Years, operation, service
from gateway.errors import ApiError
from gateway.ratelimit import Limit
from services.common.events import timestamp
from services.common.formats import MAX_PAGE_VIEWS_PER_BATCH

bp = Blueprint("tracking", __name__, url_prefix="/api/v1")

MAX_TRACK_BODY_BYTES = 64 * 1024
TOKEN = r"^[A-Za-z0-9._:-]+$"
# Per address generous (many shoppers share a carrier NAT address); per device about one batch a second.
TRACK_LIMITS = (Limit("ip", 600, 60), Limit("device_id", 60, 60))


class TrackedEvent(Body):
    type: Literal["page_view"]
    page: str = Field(min_length=1, max_length=256, description="page path, e.g. pages/product/detail")
    referrer: str = Field("", max_length=256, description="previous page or scene")
    ts: Annotated[AwareDatetime, Years(2000, 2099)] | None = Field(
        None, description="the device's time of the view (ISO 8601 with offset, years 2000-2099); "
                                                       "implausible times count as the time received")
    session_id: str = Field(min_length=1, max_length=64, pattern=TOKEN, description="one per mini-program launch")
    region: ProvinceOrEmpty = Field(
        "", description="the visitor's province when known, by its full name (广东省, as a shipping address and "
                        "WeChat's region picker name it) or its short one (广东, 广西, 内蒙古); kept by the full name. "
                        "Empty when unknown; any other text is 400, the whole batch refused")


class TrackRequest(Body):
    device_id: str = Field(min_length=8, max_length=64, pattern=TOKEN, description="the mini-program install's id")
    events: list[TrackedEvent] = Field(min_length=1, max_length=MAX_PAGE_VIEWS_PER_BATCH)


class Tracked(Reply):
    """The page views were accepted; they are counted shortly."""

    accepted: int


@bp.post("/track")
@operation(summary="Record a batch of page views from the mini-program", tag="tracking", access=TOLERANT,
           body=TrackRequest, limits=TRACK_LIMITS, responses={202: Tracked},
           description=f"Anonymous visitors are tracked by device id; with a valid access token the views are also "
                       f"the shopper's (an invalid or expired token is ignored, never refused, and so is a staff "
                       f"token while whether its session has ended cannot be checked). At most "
                       f"{MAX_PAGE_VIEWS_PER_BATCH} events and {MAX_TRACK_BODY_BYTES // 1024} KiB per request.")
def track(body: TrackRequest) -> tuple[Tracked, int]:
    if len(request.get_data(cache=True)) > MAX_TRACK_BODY_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"a batch is at most {MAX_TRACK_BODY_BYTES // 1024} KiB")
    views = [analytics_pb2.PageView(session_id=e.session_id, page=e.page, referrer=e.referrer, region=e.region,
                                    client_ts=timestamp(e.ts) if e.ts else None) for e in body.events]
    # The analytics service takes the shopper from the forwarded token (if it was valid), which it verifies again.
    reply = service(AnalyticsServiceStub).TrackPageViews(
        analytics_pb2.TrackPageViewsRequest(device_id=body.device_id, views=views))
    return Tracked(accepted=reply.accepted), 202
