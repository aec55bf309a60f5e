"""Reviews through the gateway: an order-completed event published through the broker makes the line reviewable.

Driving a real order to COMPLETED (ship, confirm receipt) is the fulfilment journey's test; here the
order service's outbox gets a synthetic OrderCompleted for a real order, which its relay publishes
and the product service consumes, exactly as the real one travels.
"""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from mall.events.v1.order_events_pb2 import CompletedLine, OrderCompleted, OrderLine
from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from services.common.outbox import add_to_outbox
from tests.fixtures.platform import Platform
from tests.fixtures.shop import product_on_shelf, verified_wechat_shopper

pytestmark = pytest.mark.e2e


def publish_order_completed(platform: Platform, order: dict, user_id: int) -> None:
    event = OrderCompleted(order_no=order["order_no"], user_id=user_id, confirmed_by="shopper", lines=[
        CompletedLine(line_id=line["id"], line=OrderLine(sku_id=line["sku_id"], product_id=line["product_id"],
                                                         quantity=line["quantity"], price_fen=line["price_fen"]))
        for line in order["lines"]])
    engine = create_engine(platform.database_urls["order"], poolclass=NullPool)
    with Session(engine) as session, session.begin():
        add_to_outbox(session, event, producer="order", aggregate_id=order["order_no"])
    platform.wait_until_consumed("order-completed", "product")


def upload(api: str, headers: dict[str, str]) -> str:
    image = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(image, "PNG")
    reply = requests.post(f"{api}/uploads", files={"file": ("photo.png", image.getvalue())}, headers=headers,
                          timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["url"]


def test_the_buyer_of_a_completed_line_reviews_it_once_and_everyone_reads_it_masked(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=2990)
    shopper, address_id = verified_wechat_shopper(platform)
    stranger, _ = verified_wechat_shopper(platform)
    submitted = requests.post(f"{api}/orders", headers={**shopper, "Idempotency-Key": uuid.uuid4().hex}, timeout=10,
                              json={"sku_id": sku_id, "quantity": 1, "address_id": address_id})
    assert submitted.status_code == 201, submitted.text
    order = submitted.json()
    line_id = order["lines"][0]["id"]
    me = requests.get(f"{api}/me", headers=shopper, timeout=10).json()
    review_url = f"{api}/orders/{order['id']}/lines/{line_id}/review"
    body = {"rating": 4, "content": "保温效果很好", "images": [upload(api, shopper)]}

    early = requests.post(review_url, json=body, headers=shopper, timeout=10)
    assert (early.status_code, early.json()["error"]["code"]) == (409, "REVIEW_NOT_ELIGIBLE")

    publish_order_completed(platform, order, me["id"])
    strangers_photo = requests.post(review_url, json={**body, "images": [upload(api, stranger)]}, headers=shopper,
                                    timeout=10)  # refused before anything is stored: the review below is the first
    posted = requests.post(review_url, json=body, headers=shopper, timeout=10)
    again = requests.post(review_url, json={**body, "rating": 1}, headers=shopper, timeout=10)
    by_stranger = requests.post(review_url, json={**body, "images": [upload(api, stranger)]}, headers=stranger,
                                timeout=10)
    foreign_image = requests.post(review_url, json={**body, "images": ["https://example.com/a.jpg"]},
                                  headers=shopper, timeout=10)

    assert (strangers_photo.status_code, strangers_photo.json()["error"]["code"],
            strangers_photo.json()["error"]["details"]) == (400, "UPLOAD_NOT_YOURS", {"images.0": "not uploaded by you"})
    assert posted.status_code == 201, posted.text
    review = posted.json()
    masked = me["nickname"][0] + "***"
    assert (review["product_id"], review["sku_id"], review["rating"], review["content"], review["images"],
            review["buyer"], review["order_no"], review["line_id"]) == (
        product_id, sku_id, 4, "保温效果很好", body["images"], masked, order["order_no"], line_id)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "REVIEW_EXISTS")
    assert (by_stranger.status_code, by_stranger.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    assert (foreign_image.status_code, list(foreign_image.json()["error"]["details"])) == (400, ["images.0"])

    listed = requests.get(f"{api}/products/{product_id}/reviews", timeout=10).json()
    detail = requests.get(f"{api}/products/{product_id}", timeout=10).json()
    mine = requests.get(f"{api}/me/reviews", headers=shopper, timeout=10).json()
    summary = {"average": 4.0, "average_tenths": 40, "count": 1,
               "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    assert (listed["total"], listed["rating"], detail["rating"]) == (1, summary, summary)
    public = {key: value for key, value in review.items() if key not in ("order_no", "line_id", "hidden")}
    assert listed["items"] == [public]
    assert (mine["total"], mine["items"]) == (1, [review])
    assert requests.get(f"{api}/me/reviews", headers=stranger, timeout=10).json()["total"] == 0
    assert requests.get(f"{platform.base_url}{body['images'][0]}", timeout=10).status_code == 200  # served back
