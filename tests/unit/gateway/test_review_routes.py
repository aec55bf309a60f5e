"""Review routes: the order line resolved through the order service, what the product service is asked, the answers."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import order_pb2
from mall.product.v1 import product_pb2
from mall.user.v1 import user_pb2

from services.common.grpc_server import CODE_KEY
from tests.fixtures.fake_services import FakeServices

API = "/api/v1"
AT = Timestamp(seconds=1_795_000_000)
IMAGE = "/media/uploads/" + "0f" * 16 + ".webp"  # an older upload, as stored reviews keep it
ORDER = order_pb2.Order(id=5, order_no="N5", user_id=42, status="COMPLETED",
                        lines=[order_pb2.OrderLine(id=9, sku_id=11, product_id=3, quantity=1)])
REVIEW = product_pb2.Review(id=1, product_id=3, sku_id=11, spec={"颜色": "黑"}, rating=4, content="好", images=[IMAGE],
                            buyer="张***", created_at=AT, order_no="N5", line_id=9)
SHOWN = {"id": 1, "product_id": 3, "sku_id": 11, "spec": {"颜色": "黑"}, "rating": 4, "content": "好",
         "images": [IMAGE], "buyer": "张***", "created_at": "2026-11-18T11:06:40Z"}


@pytest.fixture
def auth(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(user_id=42)


@pytest.fixture
def ready(clients: FakeServices) -> FakeServices:
    clients.order.GetOrder.reply = ORDER
    clients.user.GetProfile.reply = user_pb2.Profile(id=42, nickname="张三")
    clients.product.CreateReview.reply = REVIEW
    return clients


def test_a_review_names_the_orders_number_and_line_and_the_buyers_nickname(app: Flask, client: FlaskClient,
                                                                           ready: FakeServices,
                                                                           auth: dict[str, str]) -> None:
    mine = "/media/" + app.extensions["upload_names"].new(42, "webp")  # what POST /uploads answered user 42

    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4, "content": "好", "images": [mine]},
                           headers=auth)

    assert (response.status_code, response.get_json()) == (201, {**SHOWN, "order_no": "N5", "line_id": 9, "hidden": False})
    assert ready.order.GetOrder.calls[0].message == order_pb2.GetOrderRequest(id=5)
    assert ready.product.CreateReview.calls[0].message == product_pb2.CreateReviewRequest(
        order_no="N5", line_id=9, rating=4, content="好", images=[mine], buyer_nickname="张三")


def test_a_line_of_another_order_is_a_404_and_nothing_is_stored(client: FlaskClient, ready: FakeServices,
                                                                 auth: dict[str, str]) -> None:
    response = client.post(f"{API}/orders/5/lines/10/review", json={"rating": 4}, headers=auth)
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "ORDER_LINE_NOT_FOUND")
    assert ready.product.CreateReview.calls == []


def test_a_strangers_order_is_a_404(client: FlaskClient, ready: FakeServices, auth: dict[str, str],
                                    rpc_error: Callable[..., Exception]) -> None:
    ready.order.GetOrder.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such order", ((CODE_KEY, "ORDER_NOT_FOUND"),))
    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4}, headers=auth)
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    assert ready.product.CreateReview.calls == []


@pytest.mark.parametrize("code", ["REVIEW_EXISTS", "REVIEW_NOT_ELIGIBLE"])
def test_a_second_review_or_an_uncompleted_line_is_a_409(client: FlaskClient, ready: FakeServices,
                                                         auth: dict[str, str], rpc_error: Callable[..., Exception],
                                                         code: str) -> None:
    ready.product.CreateReview.error = rpc_error(grpc.StatusCode.ABORTED, "no", ((CODE_KEY, code),))
    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4}, headers=auth)
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, code)


def an_order(status: str, quantity: int, refunded: int) -> order_pb2.Order:
    return order_pb2.Order(id=5, order_no="N5", user_id=42, status=status, lines=[
        order_pb2.OrderLine(id=9, sku_id=11, product_id=3, quantity=quantity, refunded_quantity=refunded)])


NOT_ELIGIBLE = ((CODE_KEY, "REVIEW_NOT_ELIGIBLE"),)


@pytest.mark.parametrize(("order", "message", "details"), [
    (an_order("COMPLETED", 2, 2), "this line was refunded in full before the order completed: there is nothing of "
                                  "it to review", {"reason": "refunded"}),
    (an_order("REFUNDED", 1, 1), "this line was refunded in full before the order completed: there is nothing of it "
                                 "to review", {"reason": "refunded"}),
    (an_order("SHIPPED", 2, 0), "only a line of a completed order can be reviewed; confirm receipt first",
     {"reason": "not_completed", "status": "SHIPPED"}),
    (an_order("CANCELLED", 2, 0), "only a line of a completed order can be reviewed",
     {"reason": "not_completed", "status": "CANCELLED"}),
    (an_order("COMPLETED", 2, 1), "the order's completion is still on its way; try again in a moment",
     {"reason": "completing"}),
])
def test_a_line_not_eligible_for_review_says_why_and_only_a_completing_order_invites_a_retry(
        client: FlaskClient, ready: FakeServices, auth: dict[str, str], rpc_error: Callable[..., Exception],
        order: order_pb2.Order, message: str, details: dict[str, str]) -> None:
    ready.order.GetOrder.reply = order
    ready.product.CreateReview.error = rpc_error(grpc.StatusCode.ABORTED, "only a completed order line can be "
                                                 "reviewed; if you have just confirmed receipt, try again in a moment",
                                                 NOT_ELIGIBLE)

    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4}, headers=auth)

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["message"], error["details"]) == (
        409, "REVIEW_NOT_ELIGIBLE", message, details)


def test_a_second_review_of_a_line_refunded_in_full_after_completion_is_still_review_exists(
        client: FlaskClient, ready: FakeServices, auth: dict[str, str], rpc_error: Callable[..., Exception]) -> None:
    ready.order.GetOrder.reply = an_order("COMPLETED", 1, 1)  # refunded after completion: it stayed reviewable
    ready.product.CreateReview.error = rpc_error(grpc.StatusCode.ABORTED, "already reviewed",
                                                 ((CODE_KEY, "REVIEW_EXISTS"),))

    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "REVIEW_EXISTS")


@pytest.mark.parametrize(("body", "field"), [
    ({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": "5"}, "rating"), ({}, "rating"),
    ({"rating": 5, "content": "好" * 501}, "content"), ({"rating": 5, "images": [IMAGE] * 10}, "images"),
    ({"rating": 5, "images": ["https://evil.example/a.jpg"]}, "images.0"),
    ({"rating": 5, "images": ["/media/uploads/../../etc/passwd"]}, "images.0"),
])
def test_a_bad_review_is_a_400_naming_the_field(client: FlaskClient, ready: FakeServices, auth: dict[str, str],
                                                body: dict[str, object], field: str) -> None:
    response = client.post(f"{API}/orders/5/lines/9/review", json=body, headers=auth)
    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, [field])
    assert ready.order.GetOrder.calls == []


def test_reviewing_needs_a_token(client: FlaskClient, ready: FakeServices) -> None:
    assert client.post(f"{API}/orders/5/lines/9/review", json={"rating": 4}).status_code == 401


def test_a_products_reviews_are_public_paged_with_the_rating_summary(client: FlaskClient,
                                                                     clients: FakeServices) -> None:
    public = product_pb2.Review()
    public.CopyFrom(REVIEW)
    public.ClearField("order_no")
    public.ClearField("line_id")
    clients.product.ListProductReviews.reply = product_pb2.ListReviewsResponse(
        items=[public], total=21, rating=product_pb2.Rating(average=4.3, count=21, average_tenths=43,
                                                            distribution=[1, 0, 2, 5, 13]))

    response = client.get(f"{API}/products/3/reviews?page=2&page_size=10")

    assert clients.product.ListProductReviews.calls[0].message == product_pb2.ListProductReviewsRequest(
        product_id=3, offset=10, limit=10)
    assert response.get_json() == {"items": [SHOWN], "page": 2, "page_size": 10, "total": 21, "rating": {
        "average": 4.3, "average_tenths": 43, "count": 21, "distribution": {"1": 1, "2": 0, "3": 2, "4": 5, "5": 13}}}


def test_my_reviews_show_their_order_lines(client: FlaskClient, clients: FakeServices, auth: dict[str, str]) -> None:
    clients.product.ListMyReviews.reply = product_pb2.ListReviewsResponse(items=[REVIEW], total=1)

    response = client.get(f"{API}/me/reviews", headers=auth)

    assert clients.product.ListMyReviews.calls[0].message == product_pb2.ListMyReviewsRequest(offset=0, limit=20)
    assert response.get_json() == {"items": [{**SHOWN, "order_no": "N5", "line_id": 9, "hidden": False}], "page": 1, "page_size": 20,
                                   "total": 1}


def test_my_reviews_of_one_order_pass_its_number_and_a_malformed_one_is_refused(
        client: FlaskClient, clients: FakeServices, auth: dict[str, str]) -> None:
    clients.product.ListMyReviews.reply = product_pb2.ListReviewsResponse(items=[REVIEW], total=1)

    found = client.get(f"{API}/me/reviews?order_no=N5", headers=auth)
    refused = client.get(f"{API}/me/reviews?order_no=N5'--", headers=auth)

    assert (found.status_code, [call.message for call in clients.product.ListMyReviews.calls]) == (
        200, [product_pb2.ListMyReviewsRequest(offset=0, limit=20, order_no="N5")])
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (400, "INVALID_REQUEST")


def test_customer_service_hides_a_review_of_a_product_with_a_reason(client: FlaskClient, clients: FakeServices,
                                                                    bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.HideReview.reply = product_pb2.Review(
        id=1, product_id=3, sku_id=11, spec={"颜色": "黑"}, rating=1, content="广告", buyer="张***", created_at=AT,
        hidden=True)

    response = client.post(f"{API}/admin/products/3/reviews/1/hide", json={"reason": "广告"},
                           headers=bearer(roles="customer_service"))

    assert (response.status_code, response.get_json()["hidden"], clients.product.HideReview.calls[0].message) == (
        200, True, product_pb2.HideReviewRequest(product_id=3, id=1, reason="广告"))


def test_a_shopper_may_not_hide_a_review(client: FlaskClient, clients: FakeServices, auth: dict[str, str]) -> None:
    response = client.post(f"{API}/admin/products/3/reviews/1/hide", json={"reason": "差评"}, headers=auth)

    assert (response.status_code, clients.product.HideReview.calls) == (403, [])


def test_my_reviews_say_which_ones_staff_hid(client: FlaskClient, clients: FakeServices, auth: dict[str, str]) -> None:
    hidden = product_pb2.Review()
    hidden.CopyFrom(REVIEW)
    hidden.hidden = True
    clients.product.ListMyReviews.reply = product_pb2.ListReviewsResponse(items=[hidden], total=1)

    body = client.get(f"{API}/me/reviews", headers=auth).get_json()

    assert body["items"][0]["hidden"] is True


HIDDEN_AT = Timestamp(seconds=1_795_003_600)
MODERATED = product_pb2.Review(id=1, product_id=3, sku_id=11, spec={"颜色": "黑"}, rating=1, content="加我 138****5678",
                               buyer="张***", created_at=AT, order_no="N5", line_id=9, hidden=True,
                               hidden_reason="广告", hidden_by=7, hidden_at=HIDDEN_AT)
MODERATED_SHOWN = {**SHOWN, "rating": 1, "content": "加我 138****5678", "images": [], "order_no": "N5", "line_id": 9,
                   "hidden": True, "hidden_reason": "广告", "hidden_by": 7, "hidden_at": "2026-11-18T12:06:40Z"}


def test_staff_list_reviews_by_product_stars_and_hidden_with_who_hid_them(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListReviews.reply = product_pb2.ListReviewsResponse(items=[MODERATED], total=41)

    response = client.get(f"{API}/admin/reviews?product_id=3&rating=1&hidden=true&page=3&page_size=20",
                          headers=bearer(roles="customer_service"))

    assert clients.product.ListReviews.calls[0].message == product_pb2.ListReviewsRequest(
        product_id=3, rating=1, hidden=True, offset=40, limit=20)
    assert (response.status_code, response.get_json()) == (200, {
        "items": [MODERATED_SHOWN], "page": 3, "page_size": 20, "total": 41})


def test_staff_list_of_visible_reviews_asks_for_hidden_false_and_shows_no_hide(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListReviews.reply = product_pb2.ListReviewsResponse(items=[REVIEW], total=1)

    response = client.get(f"{API}/admin/reviews?hidden=false", headers=bearer(roles="operator"))

    asked = clients.product.ListReviews.calls[0].message
    assert (asked.HasField("hidden"), asked.hidden, asked.product_id, asked.rating) == (True, False, 0, 0)
    assert response.get_json()["items"] == [{**SHOWN, "order_no": "N5", "line_id": 9, "hidden": False,
                                             "hidden_reason": "", "hidden_by": None, "hidden_at": None}]


def test_staff_list_without_filters_asks_for_hidden_and_visible_ones(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListReviews.reply = product_pb2.ListReviewsResponse()

    client.get(f"{API}/admin/reviews", headers=bearer(roles="admin"))

    assert clients.product.ListReviews.calls[0].message == product_pb2.ListReviewsRequest(offset=0, limit=20)
    assert not clients.product.ListReviews.calls[0].message.HasField("hidden")


@pytest.mark.parametrize(("query", "field"), [("rating=0", "rating"), ("rating=6", "rating"),
                                              ("hidden=maybe", "hidden"), ("product_id=0", "product_id")])
def test_a_bad_filter_of_the_staff_list_is_a_400_naming_it(client: FlaskClient, clients: FakeServices,
                                                           bearer: Callable[..., dict[str, str]], query: str,
                                                           field: str) -> None:
    response = client.get(f"{API}/admin/reviews?{query}", headers=bearer(roles="admin"))

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, [field])
    assert clients.product.ListReviews.calls == []


def test_operator_unhides_a_review_with_a_reason(client: FlaskClient, clients: FakeServices,
                                                 bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.UnhideReview.reply = product_pb2.Review(
        id=1, product_id=3, sku_id=11, spec={"颜色": "黑"}, rating=1, content="差", buyer="张***", created_at=AT,
        order_no="N5", line_id=9)

    response = client.post(f"{API}/admin/reviews/1/unhide", json={"reason": "误判"}, headers=bearer(roles="operator"))

    assert clients.product.UnhideReview.calls[0].message == product_pb2.UnhideReviewRequest(id=1, reason="误判")
    assert (response.status_code, response.get_json()["hidden"], response.get_json()["hidden_by"]) == (
        200, False, None)


def test_unhiding_a_visible_review_is_a_409(client: FlaskClient, clients: FakeServices,
                                            bearer: Callable[..., dict[str, str]],
                                            rpc_error: Callable[..., Exception]) -> None:
    clients.product.UnhideReview.error = rpc_error(grpc.StatusCode.ABORTED, "this review is not hidden",
                                                   ((CODE_KEY, "REVIEW_NOT_HIDDEN"),))

    response = client.post(f"{API}/admin/reviews/1/unhide", json={"reason": "误判"}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "REVIEW_NOT_HIDDEN")


def test_unhiding_needs_a_reason(client: FlaskClient, clients: FakeServices,
                                 bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(f"{API}/admin/reviews/1/unhide", json={"reason": ""}, headers=bearer(roles="admin"))

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, ["reason"])
    assert clients.product.UnhideReview.calls == []


@pytest.mark.parametrize("roles", ["", "finance"], ids=["shopper", "finance"])
def test_only_the_roles_that_hide_reviews_list_or_unhide_them(client: FlaskClient, clients: FakeServices,
                                                              bearer: Callable[..., dict[str, str]],
                                                              roles: str) -> None:
    listed = client.get(f"{API}/admin/reviews", headers=bearer(roles=roles))
    unhidden = client.post(f"{API}/admin/reviews/1/unhide", json={"reason": "误判"}, headers=bearer(roles=roles))

    assert (listed.status_code, unhidden.status_code) == (403, 403)
    assert (clients.product.ListReviews.calls, clients.product.UnhideReview.calls) == ([], [])
