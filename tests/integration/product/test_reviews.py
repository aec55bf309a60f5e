"""Reviews on real databases: order-completed applied once, one review per line under concurrency, the summary row."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from mall.events.v1.order_events_pb2 import CompletedLine, OrderCompleted, OrderLine
from sqlalchemy import Engine, event, func, select, text

from services.common.consumer import EventConsumer
from services.common.errors import Conflict
from services.common.events import timestamp
from services.product import reviews, service
from services.product.consumers import HANDLERS
from services.product.db import product_ratings, reviewable_lines
from services.product.db import reviews as review_rows
from services.product.domain import RatingSummary, ReviewDraft
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.product.conftest import KAFKA, T0, Delivered, Shelf, UowFactory, delivered

pytestmark = pytest.mark.integration

BUYER = 42
def order_completed(order_no: str, product_id: int, sku_id: int, line_ids: range) -> Delivered:
    event = OrderCompleted(order_no=order_no, user_id=BUYER, confirmed_by="shopper", completed_at=timestamp(T0),
                           lines=[CompletedLine(line_id=i, line=OrderLine(sku_id=sku_id, product_id=product_id,
                                                                          quantity=1, price_fen=100))
                                  for i in line_ids])
    return delivered(event, "order-completed", order_no)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def test_the_same_order_completed_event_twice_records_each_line_once(pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    consumer = EventConsumer("product", pg_uow, KAFKA, HANDLERS)
    record = order_completed("N1", product_id, sku_id, range(1, 3))
    republished = order_completed("N1", product_id, sku_id, range(1, 3))  # the same completion, a new event id

    outcomes = [consumer.handle(record), consumer.handle(record), consumer.handle(republished)]

    assert outcomes == [True, False, True]
    with pg_engine.connect() as conn:
        assert conn.execute(select(reviewable_lines.c.order_no, reviewable_lines.c.line_id, reviewable_lines.c.user_id,
                                   reviewable_lines.c.product_id, reviewable_lines.c.sku_id)
                            .order_by(reviewable_lines.c.line_id)).all() == [("N1", 1, BUYER, product_id, sku_id),
                                                                               ("N1", 2, BUYER, product_id, sku_id)]


def test_concurrent_reviews_of_one_line_store_exactly_one(pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    lines = range(1, 9)
    EventConsumer("product", pg_uow, KAFKA, HANDLERS).handle(order_completed("N1", product_id, sku_id, lines))
    start = threading.Barrier(2)

    def post(line_id: int, rating: int) -> str:
        start.wait(timeout=30)  # both posts of a line leave together
        try:
            reviews.post_review(pg_uow(), user_id=BUYER, order_no="N1", line_id=line_id,
                                draft=ReviewDraft(rating=rating), buyer_nickname="张三")
            return "created"
        except Conflict as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = [Counter(pool.map(post, [line_id, line_id], [5, 1])) for line_id in lines]

    assert outcomes == [Counter({"created": 1, "REVIEW_EXISTS": 1})] * len(lines)
    assert count(pg_engine, review_rows) == len(lines)
    with pg_engine.connect() as conn:
        stars = conn.execute(select(product_ratings.c.stars_1, product_ratings.c.stars_5)).one()
    assert sum(stars) == len(lines)  # the summary counts the stored reviews, not the refused ones


def test_reviews_page_newest_first_and_the_detail_reads_the_summary_row(uow: UowFactory) -> None:
    shelf = Shelf(uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    with uow() as u:
        reviews.record_completed_lines(u, order_no="N1", user_id=BUYER, completed_at=T0, lines=[
            reviews.CompletedLine(line_id=i, product_id=product_id, sku_id=sku_id) for i in range(1, 5)])
        u.commit()
    for line_id, rating in ((1, 5), (2, 4), (3, 4), (4, 2)):
        reviews.post_review(uow(), user_id=BUYER, order_no="N1", line_id=line_id, draft=ReviewDraft(rating=rating),
                            now=T0 + timedelta(minutes=line_id))

    page = reviews.product_reviews(uow(), product_id=product_id, offset=0, limit=3)
    detail = service.view_product(uow(), product_id=product_id)
    mine = reviews.my_reviews(uow(), user_id=BUYER, offset=3, limit=3)

    assert ([r.line_id for r in page.items], page.total, [r.line_id for r in mine.items]) == ([4, 3, 2], 4, [1])
    assert (page.items[0].spec, page.items[0].buyer) == ({"颜色": "黑"}, "用户***")
    assert page.summary == detail.rating == RatingSummary((0, 1, 0, 2, 1))
    assert detail.rating.average_tenths == 38  # 15 / 4 = 3.75, half up


def test_my_reviews_of_one_order_are_read_on_the_database(uow: UowFactory) -> None:
    shelf = Shelf(uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    for order_no, user_id, line_ids in (("N1", BUYER, (1, 2)), ("N2", BUYER, (3, 4)), ("N3", BUYER + 1, (5,))):
        with uow() as u:
            reviews.record_completed_lines(u, order_no=order_no, user_id=user_id, completed_at=T0, lines=[
                reviews.CompletedLine(line_id=i, product_id=product_id, sku_id=sku_id) for i in line_ids])
            u.commit()
    for order_no, user_id, line_id in (("N1", BUYER, 1), ("N2", BUYER, 3), ("N1", BUYER, 2), ("N3", BUYER + 1, 5)):
        reviews.post_review(uow(), user_id=user_id, order_no=order_no, line_id=line_id,
                            draft=ReviewDraft(rating=4), now=T0 + timedelta(minutes=line_id))

    def lines(user_id: int, order_no: str) -> tuple[list[int], int]:
        page = reviews.my_reviews(uow(), user_id=user_id, order_no=order_no)
        return [r.line_id for r in page.items], page.total

    assert (lines(BUYER, "N1"), lines(BUYER, "N2"), lines(BUYER, "N3"), lines(BUYER, "")) == (
        ([2, 1], 2), ([3], 1), ([], 0), ([3, 2, 1], 3))


def test_two_staff_hiding_one_review_at_once_take_its_stars_out_once(pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    EventConsumer("product", pg_uow, KAFKA, HANDLERS).handle(order_completed("N1", product_id, sku_id, range(1, 3)))
    spam, _ = (reviews.post_review(pg_uow(), user_id=BUYER, order_no="N1", line_id=line_id,
                                   draft=ReviewDraft(rating=1), buyer_nickname="张三") for line_id in (1, 2))
    results: dict[str, object] = {}
    with pg_uow() as first:  # the first hide holds the review's row until it commits
        review = first.reviews.get(spam.id or 0, lock=True)
        assert review is not None and review.hide("广告", by=10, at=T0)
        first.reviews.hide(review)
        second = start_thread(results, "second", lambda: reviews.hide_review(
            pg_uow(), actor_id=10, product_id=product_id, review_id=spam.id or 0, reason="广告").hidden)
        wait_until_blocked(pg_engine, second)
        first.commit()
    second.join()

    with pg_engine.connect() as conn:
        stars_1 = conn.execute(select(product_ratings.c.stars_1)).scalar_one()
    assert (results, stars_1, reviews.product_reviews(pg_uow(), product_id=product_id).total) == (
        {"second": True}, 1, 1)


def test_two_staff_unhiding_one_review_at_once_put_its_stars_back_once(pg_uow: UowFactory,
                                                                       pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    EventConsumer("product", pg_uow, KAFKA, HANDLERS).handle(order_completed("N1", product_id, sku_id, range(1, 3)))
    wronged, _ = (reviews.post_review(pg_uow(), user_id=BUYER, order_no="N1", line_id=line_id,
                                      draft=ReviewDraft(rating=1), buyer_nickname="张三") for line_id in (1, 2))
    reviews.hide_review(pg_uow(), actor_id=10, product_id=product_id, review_id=wronged.id or 0, reason="广告")
    hidden_summary = reviews.product_reviews(pg_uow(), product_id=product_id).summary
    results: dict[str, object] = {}
    with pg_uow() as first:  # the first unhide holds the review's row until it commits
        review = first.reviews.get(wronged.id or 0, lock=True)
        assert review is not None
        review.unhide("误判")
        first.reviews.unhide(review)
        second = start_thread(results, "second", lambda: reviews.unhide_review(
            pg_uow(), actor_id=11, review_id=wronged.id or 0, reason="误判").hidden)
        wait_until_blocked(pg_engine, second)
        first.commit()
    second.join()

    page = reviews.product_reviews(pg_uow(), product_id=product_id)
    assert (hidden_summary, results, page.summary, page.total) == (
        RatingSummary((1, 0, 0, 0, 0)), {"second": "REVIEW_NOT_HIDDEN"}, RatingSummary((2, 0, 0, 0, 0)), 2)


def test_staff_list_reads_who_hid_a_review_and_when_after_a_round_trip(uow: UowFactory) -> None:
    shelf = Shelf(uow)
    product_id = shelf.product("保温杯")
    [sku_id] = shelf.sku_ids(product_id)
    with uow() as u:
        reviews.record_completed_lines(u, order_no="N1", user_id=BUYER, completed_at=T0, lines=[
            reviews.CompletedLine(line_id=i, product_id=product_id, sku_id=sku_id) for i in range(1, 4)])
        u.commit()
    for line_id, rating in ((1, 5), (2, 1), (3, 1)):
        reviews.post_review(uow(), user_id=BUYER, order_no="N1", line_id=line_id, draft=ReviewDraft(rating=rating),
                            now=T0 + timedelta(minutes=line_id))
    [third, second, _] = reviews.staff_reviews(uow()).items
    reviews.hide_review(uow(), actor_id=10, product_id=product_id, review_id=second.id or 0, reason="广告",
                        now=T0 + timedelta(hours=1))

    hidden = reviews.staff_reviews(uow(), hidden=True)
    ones = reviews.staff_reviews(uow(), product_id=product_id, rating=1, hidden=False)
    every = reviews.staff_reviews(uow(), offset=1, limit=1)

    assert ([(r.id, r.hidden_reason, r.hidden_by, r.hidden_at) for r in hidden.items], hidden.total) == (
        [(second.id, "广告", 10, T0 + timedelta(hours=1))], 1)
    assert ([r.id for r in ones.items], ones.total) == ([third.id], 1)
    assert ([r.id for r in every.items], every.total) == ([second.id], 3)


@pytest.fixture
def many_reviews(pg_uow: UowFactory, pg_engine: Engine) -> int:
    """6,000 reviews of a product and 1,000 of another, stars as shoppers give them (2% one star, 60% five), one in a
    hundred hidden; analysed."""
    shelf = Shelf(pg_uow)
    best_seller, other = shelf.product("保温杯"), shelf.product("水杯")
    with pg_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO reviews (product_id, sku_id, user_id, order_no, line_id, rating, content, images, spec, buyer,"
            " created_at, hidden) SELECT CASE WHEN i <= 6000 THEN :best ELSE :other END, 1, 42, 'G' || i, i,"
            " CASE WHEN i % 50 = 0 THEN 1 WHEN i % 50 = 1 THEN 2 WHEN i % 50 < 5 THEN 3 WHEN i % 50 < 20 THEN 4 ELSE 5 END,"
            " '', '[]', '{}', '用户***', :t0 + i * interval '1 second', i % 100 = 0"
            " FROM generate_series(1, 7000) AS i"), {"best": best_seller, "other": other, "t0": T0})
        conn.execute(text("ANALYZE reviews"))
    return best_seller


@pytest.mark.parametrize(("filters", "index"), [
    ({}, "ix_reviews_created"),
    ({"hidden": False}, "ix_reviews_created"),
    ({"hidden": True}, "ix_reviews_hidden_created"),
    ({"rating": 1}, "ix_reviews_rating_created"),
    ({"product_id": 1}, "ix_reviews_product_created"),
    ({"product_id": 1, "rating": 1}, "ix_reviews_product_rating_created"),
])
def test_each_page_of_staffs_review_list_is_read_in_order_from_an_index(
        pg_uow: UowFactory, pg_engine: Engine, many_reviews: int, filters: dict[str, object], index: str) -> None:
    statements: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY" in statement:
            statements.append((statement, parameters))

    if "product_id" in filters:
        filters["product_id"] = many_reviews + 1  # the smaller product
    event.listen(pg_engine, "before_cursor_execute", record)
    try:
        reviews.staff_reviews(pg_uow(), **filters)  # type: ignore[arg-type]
    finally:
        event.remove(pg_engine, "before_cursor_execute", record)
    [(page_query, parameters)] = statements
    with pg_engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {page_query}", parameters))  # type: ignore[arg-type]

    assert (index in plan, "Sort" in plan) == (True, False), plan
