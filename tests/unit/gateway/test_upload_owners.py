"""A review or an after-sales case names only images its author uploaded (gateway/uploads.py): uploads are made and
named through the gateway, with the real media store in a temporary directory and the fake services behind it."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import after_sale_pb2, order_pb2
from mall.product.v1 import product_pb2
from mall.user.v1 import user_pb2
from PIL import Image

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.storage import LocalMediaStorage
from services.common import formats
from tests.fixtures.fake_services import FakeServices

API = "/api/v1"
SHOPPER_A, SHOPPER_B = 42, 43
AT = Timestamp(seconds=1_795_000_000)
REVIEW_URL, CASE_URL = f"{API}/orders/5/lines/9/review", f"{API}/orders/5/after-sales"
OLD_UPLOAD = "/media/uploads/" + "0f" * 16 + ".png"  # the name POST /uploads gave before it signed names
SECRET = "replicas-share-this-rate-limit-secret-0123456789"


@pytest.fixture
def media(tmp_path: Path) -> LocalMediaStorage:
    return LocalMediaStorage(tmp_path / "media")


@pytest.fixture
def ready(app: Flask, clients: FakeServices, media: LocalMediaStorage) -> FakeServices:
    """The gateway storing uploads in `media`; the services answer a review and a case of order 5, line 9."""
    app.extensions["media_storage"] = media
    clients.order.GetOrder.reply = order_pb2.Order(
        id=5, order_no="N5", user_id=SHOPPER_B, status="COMPLETED",
        lines=[order_pb2.OrderLine(id=9, sku_id=11, product_id=3, quantity=1)])
    clients.user.GetProfile.reply = user_pb2.Profile(id=SHOPPER_B, nickname="张三")
    clients.product.CreateReview.answer = lambda message: product_pb2.Review(
        id=1, product_id=3, sku_id=11, rating=message.rating, images=message.images, buyer="张***", created_at=AT,
        order_no="N5", line_id=9)
    clients.order.CreateAfterSale.answer = lambda message: after_sale_pb2.AfterSale(
        id=7, case_no="AS7", order_id=5, order_no="N5", user_id=SHOPPER_B, type="refund_only", status="REQUESTED",
        reason=message.reason, images=message.images, refund_fen=1999, created_at=AT, updated_at=AT,
        lines=[after_sale_pb2.AfterSaleLine(line_id=9, quantity=1, amount_fen=1999, sku_id=11, name="茶")])
    return clients


def upload(client: FlaskClient, headers: dict[str, str]) -> str:
    png = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(png, "PNG")
    response = client.post(f"{API}/uploads", data={"file": (io.BytesIO(png.getvalue()), "photo.png")},
                           headers=headers, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]


def review(images: list[str]) -> dict[str, Any]:
    return {"rating": 4, "images": images}


def case(images: list[str]) -> dict[str, Any]:
    return {"type": "refund_only", "line_ids": [9], "reason": "坏了", "images": images}


def error_of(response) -> tuple[int, str, dict[str, str]]:  # type: ignore[no-untyped-def]
    error = response.get_json()["error"]
    return response.status_code, error["code"], error.get("details", {})


def test_another_shoppers_upload_in_a_review_is_a_400_and_nothing_is_stored(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    theirs = upload(client, bearer(user_id=SHOPPER_A))

    response = client.post(REVIEW_URL, json=review([theirs]), headers=bearer(user_id=SHOPPER_B))

    assert error_of(response) == (400, "UPLOAD_NOT_YOURS", {"images.0": "not uploaded by you"})
    assert (ready.order.GetOrder.calls, ready.product.CreateReview.calls) == ([], [])


def test_another_shoppers_upload_in_an_after_sales_case_is_a_400_and_nothing_is_stored(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    theirs = upload(client, bearer(user_id=SHOPPER_A))

    response = client.post(CASE_URL, json=case([theirs]), headers=bearer(user_id=SHOPPER_B))

    assert error_of(response) == (400, "UPLOAD_NOT_YOURS", {"images.0": "not uploaded by you"})
    assert ready.order.CreateAfterSale.calls == []


def test_my_own_uploads_are_stored_with_my_review_and_my_case(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    mine = [upload(client, bearer(user_id=SHOPPER_B)) for _ in range(2)]

    reviewed = client.post(REVIEW_URL, json=review(mine), headers=bearer(user_id=SHOPPER_B))
    opened = client.post(CASE_URL, json=case(mine), headers=bearer(user_id=SHOPPER_B))

    assert (reviewed.status_code, reviewed.get_json()["images"], opened.status_code, opened.get_json()["images"]) == (
        201, mine, 201, mine)
    assert [call.message.images for call in ready.product.CreateReview.calls] == [mine]
    assert [call.message.images for call in ready.order.CreateAfterSale.calls] == [mine]


def test_one_foreign_image_among_mine_is_named_and_refuses_the_whole_review(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    mine, theirs = upload(client, bearer(user_id=SHOPPER_B)), upload(client, bearer(user_id=SHOPPER_A))

    response = client.post(REVIEW_URL, json=review([mine, theirs, mine]), headers=bearer(user_id=SHOPPER_B))

    assert error_of(response) == (400, "UPLOAD_NOT_YOURS", {"images.1": "not uploaded by you"})
    assert ready.product.CreateReview.calls == []


def test_an_upload_named_with_its_signature_taken_to_another_of_my_names_is_refused(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    theirs, mine = upload(client, bearer(user_id=SHOPPER_A)), upload(client, bearer(user_id=SHOPPER_B))
    forged = theirs[:-len("-" + "0" * 32 + ".png")] + mine[-len("-" + "0" * 32 + ".png"):]  # their file, my signature

    response = client.post(CASE_URL, json=case([forged]), headers=bearer(user_id=SHOPPER_B))

    assert (error_of(response)[:2], ready.order.CreateAfterSale.calls) == ((400, "UPLOAD_NOT_YOURS"), [])


@pytest.mark.parametrize("url", [CASE_URL, REVIEW_URL])
def test_an_upload_from_before_names_were_signed_cannot_be_named_anew(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]], url: str) -> None:
    body = case([OLD_UPLOAD]) if url == CASE_URL else review([OLD_UPLOAD])

    response = client.post(url, json=body, headers=bearer(user_id=SHOPPER_B))

    assert error_of(response) == (400, "UPLOAD_NOT_YOURS", {"images.0": "not uploaded by you"})
    assert (ready.product.CreateReview.calls, ready.order.CreateAfterSale.calls) == ([], [])


def test_an_upload_through_one_replica_is_named_through_another_sharing_the_secret_and_no_other(
        settings: GatewaySettings, ready: FakeServices, media: LocalMediaStorage,
        bearer: Callable[..., dict[str, str]]) -> None:
    replicas = [create_app(replace(settings, rate_limit_secret=secret), ready) for secret in (SECRET, SECRET, "x" * 32)]
    for replica in replicas:
        replica.extensions["media_storage"] = media
    first, second, other = (replica.test_client() for replica in replicas)
    mine = upload(first, bearer(user_id=SHOPPER_B))

    elsewhere = second.post(CASE_URL, json=case([mine]), headers=bearer(user_id=SHOPPER_B))
    other_key = other.post(CASE_URL, json=case([mine]), headers=bearer(user_id=SHOPPER_B))

    assert (elsewhere.status_code, error_of(other_key)[:2]) == (201, (400, "UPLOAD_NOT_YOURS"))
    assert len(ready.order.CreateAfterSale.calls) == 1


def test_an_upload_is_named_signed_and_served_at_a_path_reviews_accept(
        client: FlaskClient, ready: FakeServices, media: LocalMediaStorage,
        bearer: Callable[..., dict[str, str]]) -> None:
    url = upload(client, bearer(user_id=SHOPPER_A))

    assert (bool(formats.SIGNED_UPLOAD_URL_PATTERN.fullmatch(url)), bool(formats.UPLOAD_URL_PATTERN.fullmatch(url)),
            (media.directory / url.removeprefix("/media/")).is_file()) == (True, True, True)


def test_staff_name_a_colleagues_upload_in_a_product_unchecked(
        client: FlaskClient, ready: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    colleagues = upload(client, bearer(roles="operator", user_id=7))
    ready.product.CreateProduct.reply = product_pb2.Product(id=3, name="茶", status="DRAFT", images=[colleagues])

    response = client.post(f"{API}/admin/products", headers=bearer(roles="operator", user_id=8), json={
        "name": "茶", "category_id": 1, "brand_id": 1, "images": [colleagues], "skus": [{"spec": {}, "price_fen": 100}]})

    assert (response.status_code, [call.message.product.images for call in ready.product.CreateProduct.calls]) == (
        201, [[colleagues]])
