"""Reviews on the in-memory unit of work: eligibility from order-completed, the rules of a review, the summary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import CompletedLine, OrderCompleted, OrderLine
from mall.events.v1.product_events_pb2 import ProductChanged
from mall.product.v1 import product_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.events import InvalidEvent, timestamp
from services.product import consumers, reviews, service
from services.product.domain import RatingSummary, ReviewDraft, mask_buyer
from services.product.grpc_api import ProductServicer
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.product.test_use_cases import on_sale, sku_ids
from tests.unit.product.test_use_cases import uow as uow  # noqa: F401  (the catalogue fixture)

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
BUYER, STRANGER = 42, 43
IMAGE = "/media/uploads/" + "ab" * 16 + ".jpg"  # an upload named before names were signed for their uploader
SIGNED_IMAGE = "/media/uploads/" + "ab" * 16 + "-" + "cd" * 16 + ".png"  # as POST /uploads names one now


def completed(order_no: str, product_id: int, sku_id: int, *line_ids: int, user_id: int = BUYER) -> OrderCompleted:
    return OrderCompleted(order_no=order_no, user_id=user_id, confirmed_by="shopper", completed_at=timestamp(T0),
                          lines=[CompletedLine(line_id=line_id, line=OrderLine(sku_id=sku_id, product_id=product_id,
                                                                               quantity=1, price_fen=100))
                                 for line_id in line_ids])


def complete(uow: FakeProductUnitOfWork, event: OrderCompleted) -> None:
    consumers.on_order_completed(uow, event, EventEnvelope(event_id="e1"))


@pytest.fixture
def bought(uow: FakeProductUnitOfWork) -> tuple[int, int]:
    """A product on sale and its black SKU, whose order N1 (lines 1 and 2) BUYER received."""
    product_id = on_sale(uow)
    sku_id = sku_ids(uow, product_id)[0]
    complete(uow, completed("N1", product_id, sku_id, 1, 2))
    return product_id, sku_id


def post(uow: FakeProductUnitOfWork, line_id: int = 1, rating: int = 5, *, user_id: int = BUYER, order_no: str = "N1",
         at: datetime = T0, **draft: object) -> reviews.Review:
    return reviews.post_review(uow, user_id=user_id, order_no=order_no, line_id=line_id,
                               draft=ReviewDraft(rating=rating, **draft), buyer_nickname="张三丰", now=at)  # type: ignore[arg-type]


def test_a_review_keeps_uploads_of_either_name_form_the_gateway_let_through(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    assert post(uow, images=(SIGNED_IMAGE, IMAGE)).images == [SIGNED_IMAGE, IMAGE]


def test_the_buyer_reviews_a_completed_line_with_the_skus_spec_and_a_masked_name(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    review = post(uow, content=" 很好用 ", images=(IMAGE,))

    assert (review.product_id, review.sku_id, review.spec, review.rating, review.content, review.images,
            review.buyer) == (*bought, {"颜色": "黑"}, 5, "很好用", [IMAGE], "张***")


def test_a_line_is_reviewed_once(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    post(uow)
    with pytest.raises(Conflict) as again:
        post(uow, rating=1)
    assert again.value.code == "REVIEW_EXISTS"
    assert uow.reviews.summary(bought[0]).stars == (0, 0, 0, 0, 1)


def test_a_line_whose_completion_is_not_known_yet_is_not_eligible(uow: FakeProductUnitOfWork,
                                                                  bought: tuple[int, int]) -> None:
    for order_no, line_id in (("N1", 3), ("N2", 1)):
        with pytest.raises(Conflict) as refused:
            post(uow, line_id, order_no=order_no)
        assert refused.value.code == "REVIEW_NOT_ELIGIBLE"


def test_someone_elses_line_is_not_found(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    with pytest.raises(NotFound) as refused:
        post(uow, user_id=STRANGER)
    assert refused.value.code == "ORDER_LINE_NOT_FOUND"
    assert uow.reviews.items == []


@pytest.mark.parametrize(("draft", "field"), [
    ({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"content": "好" * 501}, "content"),
    ({"images": (IMAGE,) * 10}, "images"), ({"images": ("https://evil.example/x.jpg",)}, "images"),
    ({"images": ("/media/catalog/abc.png",)}, "images"), ({"images": (IMAGE + "\n",)}, "images"),
])
def test_a_bad_review_is_refused_naming_the_field(uow: FakeProductUnitOfWork, bought: tuple[int, int],
                                                  draft: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"rating": 4, **draft}
    with pytest.raises(InvalidInput) as refused:
        reviews.post_review(uow, user_id=BUYER, order_no="N1", line_id=1, draft=ReviewDraft(**fields))  # type: ignore[arg-type]
    assert (refused.value.code, list(refused.value.details)) == ("REVIEW_INVALID", [field])


def test_the_limits_themselves_are_allowed(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    review = post(uow, rating=1, content="好" * 500, images=(IMAGE,) * 9)
    assert (len(review.content), len(review.images)) == (500, 9)


def test_the_same_completion_twice_records_each_line_once(uow: FakeProductUnitOfWork,
                                                          bought: tuple[int, int]) -> None:
    complete(uow, completed("N1", *bought, 1, 2))
    assert [(line.order_no, line.line_id, line.user_id) for line in uow.reviews.lines] == [("N1", 1, BUYER),
                                                                                           ("N1", 2, BUYER)]


@pytest.mark.parametrize("event", [
    completed("", 1, 1, 1), completed("N9", 1, 1, 1, user_id=0), completed("", 1, 1),
    completed("N9", 0, 1, 1), completed("N9", 1, 1, 0),
])
def test_an_order_completed_without_its_ids_is_dead_lettered(uow: FakeProductUnitOfWork,
                                                             event: OrderCompleted) -> None:
    with pytest.raises(InvalidEvent):
        complete(uow, event)
    assert uow.reviews.lines == []


def test_an_order_completed_dated_where_no_datetime_reaches_is_dead_lettered(uow: FakeProductUnitOfWork,
                                                                            bought: tuple[int, int]) -> None:
    event = completed("N8", *bought, 1)
    event.completed_at.seconds = 10**12  # beyond year 9999: protobuf's ValueError would be retried for ever

    with pytest.raises(InvalidEvent, match="carries a time no datetime holds"):
        complete(uow, event)
    assert [(line.order_no, line.line_id) for line in uow.reviews.lines] == [("N1", 1), ("N1", 2)]


def test_an_order_completed_with_every_line_refunded_has_no_lines_and_makes_nothing_reviewable(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    complete(uow, completed("N7", *bought))  # the order service leaves out lines refunded in full

    assert [(line.order_no, line.line_id) for line in uow.reviews.lines] == [("N1", 1), ("N1", 2)]
    with pytest.raises(Conflict) as refused:
        post(uow, 1, order_no="N7")
    assert refused.value.code == "REVIEW_NOT_ELIGIBLE"


def test_a_products_reviews_are_newest_first_with_the_summary_the_detail_shows_too(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    product_id, sku_id = bought
    complete(uow, completed("N2", product_id, sku_id, 3, 4))
    for minute, (order_no, line_id, rating) in enumerate((("N1", 1, 5), ("N1", 2, 4), ("N2", 3, 4), ("N2", 4, 1))):
        post(uow, line_id, rating, order_no=order_no, at=T0 + timedelta(minutes=minute))

    page = reviews.product_reviews(uow, product_id=product_id, offset=1, limit=2)
    detail = service.view_product(uow, product_id=product_id)

    assert ([r.line_id for r in page.items], page.total) == ([3, 2], 4)
    assert page.summary == detail.rating == RatingSummary((1, 0, 0, 2, 1))
    assert (detail.rating.count, detail.rating.average_tenths) == (4, 35)  # 14 / 4 = 3.5
    assert [r.line_id for r in reviews.my_reviews(uow, user_id=BUYER).items] == [4, 3, 2, 1]
    assert reviews.my_reviews(uow, user_id=STRANGER).total == 0


def test_my_reviews_of_one_order_say_which_of_its_lines_i_reviewed(uow: FakeProductUnitOfWork,
                                                                   bought: tuple[int, int]) -> None:
    product_id, sku_id = bought
    complete(uow, completed("N2", product_id, sku_id, 3, 4))
    for minute, (order_no, line_id) in enumerate((("N1", 1), ("N2", 3), ("N1", 2))):
        post(uow, line_id, 5, order_no=order_no, at=T0 + timedelta(minutes=minute))

    of_n1 = reviews.my_reviews(uow, user_id=BUYER, order_no="N1")
    of_n2 = reviews.my_reviews(uow, user_id=BUYER, order_no="N2")

    assert ([r.line_id for r in of_n1.items], of_n1.total) == ([2, 1], 2)
    assert ([r.line_id for r in of_n2.items], of_n2.total) == ([3], 1)  # line 4 of N2 is not reviewed yet
    assert reviews.my_reviews(uow, user_id=STRANGER, order_no="N1").total == 0  # another buyer's order: none


def test_a_product_off_the_shelf_shows_no_reviews(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    service.set_shelf(uow, actor_id=7, product_id=bought[0], on_shelf=False, now=T0)
    with pytest.raises(NotFound):
        reviews.product_reviews(uow, product_id=bought[0])


@pytest.mark.parametrize(("stars", "tenths"), [
    ((0, 0, 0, 0, 0), 0), ((0, 0, 0, 0, 1), 50), ((1, 0, 0, 0, 0), 10), ((0, 0, 0, 2, 1), 43),  # 4.333
    ((0, 0, 0, 1, 1), 45), ((1, 0, 0, 0, 1), 30), ((0, 0, 1, 12, 7), 43),  # 86/20 = 4.30
    ((0, 0, 0, 13, 7), 44),  # 4.35 rounds half up
])
def test_the_average_is_in_tenths_rounded_half_up(stars: tuple[int, int, int, int, int], tenths: int) -> None:
    assert RatingSummary(stars).average_tenths == tenths


@pytest.mark.parametrize(("nickname", "shown"), [("张三丰", "张***"), ("用户8000", "用***"), ("  ", "用户***"),
                                                 ("", "用户***"), ("A", "A***")])
def test_the_buyer_is_shown_masked(nickname: str, shown: str) -> None:
    assert mask_buyer(nickname) == shown


def test_a_phone_or_id_number_in_a_review_is_masked_for_every_other_reader(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    post(uow, content="客服不理人，加我 13812345678 细聊；身份证 110101199003071234")

    listed = ProductServicer(lambda: uow).ListProductReviews(
        product_pb2.ListProductReviewsRequest(product_id=bought[0]), None)  # type: ignore[arg-type]

    assert listed.items[0].content == "客服不理人，加我 138****5678 细聊；身份证 1101**********1234"


STAFF = 9


def test_staff_hide_a_review_from_the_product_page_and_its_rating(uow: FakeProductUnitOfWork,
                                                                   bought: tuple[int, int]) -> None:
    kept = post(uow, line_id=1, rating=5, content="好")
    abusive = post(uow, line_id=2, rating=1, content="广告 加V")

    reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0], review_id=abusive.id or 0, reason="广告", now=T0)

    page = reviews.product_reviews(uow, product_id=bought[0])
    assert ([r.id for r in page.items], page.total, page.summary) == ([kept.id], 1, RatingSummary((0, 0, 0, 0, 1)))


def test_hiding_a_review_twice_takes_its_stars_out_once(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    post(uow, line_id=1, rating=5)
    abusive = post(uow, line_id=2, rating=1)

    for _ in range(2):
        reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0], review_id=abusive.id or 0, reason="广告",
                            now=T0)

    assert reviews.product_reviews(uow, product_id=bought[0]).summary == RatingSummary((0, 0, 0, 0, 1))


def test_hiding_a_review_is_in_the_products_audit_log_with_who_and_why(uow: FakeProductUnitOfWork,
                                                                       bought: tuple[int, int]) -> None:
    abusive = post(uow, line_id=2, rating=1)

    reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0], review_id=abusive.id or 0, reason="广告", now=T0)

    entry = service.audit_log(uow, product_id=bought[0])[0][0]
    assert (entry.actor_id, entry.action, entry.before, entry.after) == (
        STAFF, "hide_review", {"review_id": abusive.id, "hidden": False},
        {"review_id": abusive.id, "hidden": True, "reason": "广告"})


def test_hiding_needs_a_reason_and_a_review_of_that_product(uow: FakeProductUnitOfWork,
                                                            bought: tuple[int, int]) -> None:
    review = post(uow)

    with pytest.raises(InvalidInput) as no_reason:
        reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0], review_id=review.id or 0, reason=" ")
    with pytest.raises(NotFound) as other_product:
        reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0] + 1, review_id=review.id or 0, reason="广告")

    assert (no_reason.value.code, other_product.value.code, review.hidden) == (
        "REASON_REQUIRED", "REVIEW_NOT_FOUND", False)


def test_the_author_still_sees_a_hidden_review_marked_hidden(uow: FakeProductUnitOfWork,
                                                            bought: tuple[int, int]) -> None:
    review = post(uow)

    reviews.hide_review(uow, actor_id=STAFF, product_id=bought[0], review_id=review.id or 0, reason="广告", now=T0)

    assert [(r.id, r.hidden) for r in reviews.my_reviews(uow, user_id=BUYER).items] == [(review.id, True)]


def test_a_review_publishes_product_changed_so_cached_details_show_the_new_rating(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    post(uow)

    assert [(e.aggregate_id, e.payload.reason) for e in uow.published
            if isinstance(e.payload, ProductChanged)][-1] == (str(bought[0]), "review")


# Moderation: staff's list of every review, and undoing a hide

def hide(uow: FakeProductUnitOfWork, product_id: int, review: reviews.Review, reason: str = "广告") -> None:
    reviews.hide_review(uow, actor_id=STAFF, product_id=product_id, review_id=review.id or 0, reason=reason, now=T0)


def unhide(uow: FakeProductUnitOfWork, review: reviews.Review, reason: str = "误判") -> reviews.Review:
    return reviews.unhide_review(uow, actor_id=STAFF + 1, review_id=review.id or 0, reason=reason,
                                 now=T0 + timedelta(hours=1))


def test_unhiding_puts_the_review_back_on_the_page_and_its_stars_back_into_the_rating(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    kept = post(uow, line_id=1, rating=5)
    wronged = post(uow, line_id=2, rating=1, at=T0 + timedelta(minutes=1))
    hide(uow, bought[0], wronged)
    before = reviews.product_reviews(uow, product_id=bought[0])

    unhide(uow, wronged)

    after = reviews.product_reviews(uow, product_id=bought[0])
    assert (before.total, before.summary, [r.id for r in before.items]) == (1, RatingSummary((0, 0, 0, 0, 1)), [kept.id])
    assert (after.total, after.summary, [r.id for r in after.items]) == (
        2, RatingSummary((1, 0, 0, 0, 1)), [wronged.id, kept.id])
    assert (wronged.hidden, wronged.hidden_reason, wronged.hidden_by, wronged.hidden_at) == (False, "", None, None)


def test_unhiding_a_visible_review_is_a_conflict_and_changes_nothing(uow: FakeProductUnitOfWork,
                                                                     bought: tuple[int, int]) -> None:
    visible = post(uow, line_id=1, rating=4)
    logged = len(service.audit_log(uow, product_id=bought[0])[0])

    with pytest.raises(Conflict) as refused:
        unhide(uow, visible)

    assert refused.value.code == "REVIEW_NOT_HIDDEN"
    assert reviews.product_reviews(uow, product_id=bought[0]).summary == RatingSummary((0, 0, 0, 1, 0))
    assert len(service.audit_log(uow, product_id=bought[0])[0]) == logged


def test_unhiding_twice_counts_the_stars_once(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    wronged = post(uow, line_id=1, rating=3)
    hide(uow, bought[0], wronged)
    unhide(uow, wronged)

    with pytest.raises(Conflict):
        unhide(uow, wronged)

    assert reviews.product_reviews(uow, product_id=bought[0]).summary == RatingSummary((0, 0, 1, 0, 0))


def test_unhiding_is_in_the_products_audit_log_with_who_why_and_the_reason_it_was_hidden_for(
        uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    wronged = post(uow, line_id=1, rating=1)
    hide(uow, bought[0], wronged, reason="广告")

    unhide(uow, wronged, reason=" 误判，是真实差评 ")

    entry = service.audit_log(uow, product_id=bought[0])[0][0]
    assert (entry.actor_id, entry.action, entry.at, entry.before, entry.after) == (
        STAFF + 1, "unhide_review", T0 + timedelta(hours=1), {"review_id": wronged.id, "hidden": True, "reason": "广告"},
        {"review_id": wronged.id, "hidden": False, "reason": "误判，是真实差评"})


def test_unhiding_needs_a_reason_and_a_known_review(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> None:
    wronged = post(uow)
    hide(uow, bought[0], wronged)

    with pytest.raises(InvalidInput) as no_reason:
        unhide(uow, wronged, reason=" \x00")
    with pytest.raises(NotFound) as unknown:
        reviews.unhide_review(uow, actor_id=STAFF, review_id=99, reason="误判")

    assert (no_reason.value.code, unknown.value.code, wronged.hidden) == ("REASON_REQUIRED", "REVIEW_NOT_FOUND", True)


def test_unhiding_publishes_product_changed_so_cached_details_show_the_rating(uow: FakeProductUnitOfWork,
                                                                              bought: tuple[int, int]) -> None:
    wronged = post(uow)
    hide(uow, bought[0], wronged)
    published = len(uow.published)

    unhide(uow, wronged)

    assert [(e.aggregate_id, e.payload.reason) for e in uow.published[published:]
            if isinstance(e.payload, ProductChanged)] == [(str(bought[0]), "review")]


@contextlib.contextmanager
def acting_as(roles: frozenset[str]) -> Iterator[None]:
    token = caller_var.set(Caller(user_id=STAFF, roles=roles, token_id="t"))
    try:
        yield
    finally:
        caller_var.reset(token)


@pytest.fixture
def staff_caller() -> Iterator[None]:
    """The RPC's caller is customer service, a role that moderates reviews."""
    with acting_as(frozenset({"customer_service"})):
        yield


@pytest.mark.parametrize("roles", [frozenset(), frozenset({"finance"})], ids=["shopper", "finance"])
def test_only_the_roles_that_hide_reviews_list_or_unhide_them(uow: FakeProductUnitOfWork, bought: tuple[int, int],
                                                              roles: frozenset[str]) -> None:
    wronged = post(uow)
    hide(uow, bought[0], wronged)
    servicer = ProductServicer(lambda: uow)

    with acting_as(roles):
        with pytest.raises(Forbidden):
            servicer.ListReviews(product_pb2.ListReviewsRequest(), None)  # type: ignore[arg-type]
        with pytest.raises(Forbidden):
            servicer.UnhideReview(product_pb2.UnhideReviewRequest(id=wronged.id, reason="误判"), None)  # type: ignore[arg-type]

    assert (wronged.hidden, reviews.product_reviews(uow, product_id=bought[0]).total) == (True, 0)


@pytest.fixture
def moderated(uow: FakeProductUnitOfWork, bought: tuple[int, int]) -> list[reviews.Review]:
    """Five reviews, oldest first: N1 lines 1-2 (5 and 4 stars) and N2 lines 3-4 (4 and 1 stars) of the bought
    product, the 1-star one hidden; N3 line 5 (1 star) of another product."""
    product_id, sku_id = bought
    other = on_sale(uow)
    complete(uow, completed("N2", product_id, sku_id, 3, 4))
    complete(uow, completed("N3", other, sku_ids(uow, other)[0], 5))
    written = [post(uow, line_id, rating, order_no=order_no, at=T0 + timedelta(minutes=line_id))
               for order_no, line_id, rating in (("N1", 1, 5), ("N1", 2, 4), ("N2", 3, 4), ("N2", 4, 1), ("N3", 5, 1))]
    hide(uow, product_id, written[3])
    return written


@pytest.mark.parametrize(("filters", "lines", "total"), [
    ({}, [5, 4, 3, 2, 1], 5),
    ({"hidden": True}, [4], 1),
    ({"hidden": False}, [5, 3, 2, 1], 4),
    ({"rating": 1}, [5, 4], 2),
    ({"rating": 4, "hidden": False}, [3, 2], 2),
    ({"product": True}, [4, 3, 2, 1], 4),
    ({"product": True, "rating": 1}, [4], 1),
    ({"product": True, "hidden": False, "rating": 1}, [], 0),
])
def test_staff_list_every_review_newest_first_by_product_stars_and_hidden(
        uow: FakeProductUnitOfWork, bought: tuple[int, int], moderated: list[reviews.Review],
        filters: dict[str, object], lines: list[int], total: int) -> None:
    product_id = bought[0] if filters.pop("product", False) else 0

    page = reviews.staff_reviews(uow, product_id=product_id, **filters)  # type: ignore[arg-type]

    assert ([r.line_id for r in page.items], page.total) == (lines, total)


def test_staff_list_pages_keep_the_total(uow: FakeProductUnitOfWork, moderated: list[reviews.Review]) -> None:
    page = reviews.staff_reviews(uow, offset=2, limit=2)

    assert ([r.line_id for r in page.items], page.total) == ([3, 2], 5)


def test_staff_list_refuses_a_rating_outside_one_to_five(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        reviews.staff_reviews(uow, rating=6)

    assert (refused.value.code, refused.value.details) == ("REVIEW_INVALID", {"rating": "1 to 5"})


def test_staff_see_a_hidden_reviews_order_line_and_who_hid_it_when_and_why_but_masked_text(
        uow: FakeProductUnitOfWork, bought: tuple[int, int], staff_caller: None) -> None:
    review = post(uow, line_id=2, rating=1, content="加我 13812345678")
    hide(uow, bought[0], review, reason="广告")

    listed = ProductServicer(lambda: uow).ListReviews(
        product_pb2.ListReviewsRequest(hidden=True), None).items[0]  # type: ignore[arg-type]

    assert (listed.order_no, listed.line_id, listed.buyer, listed.content, listed.hidden, listed.hidden_reason,
            listed.hidden_by, listed.hidden_at.ToDatetime(tzinfo=UTC)) == (
        "N1", 2, "张***", "加我 138****5678", True, "广告", STAFF, T0)


def test_staff_see_a_visible_review_with_no_hide(uow: FakeProductUnitOfWork, bought: tuple[int, int],
                                                 staff_caller: None) -> None:
    post(uow)

    listed = ProductServicer(lambda: uow).ListReviews(
        product_pb2.ListReviewsRequest(hidden=False), None).items[0]  # type: ignore[arg-type]

    assert (listed.hidden, listed.hidden_reason, listed.hidden_by, listed.HasField("hidden_at")) == (
        False, "", 0, False)
