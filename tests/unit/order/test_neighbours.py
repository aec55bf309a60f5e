"""The order service's ports on fake gRPC neighbours: what they ask and how they read the answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2
from mall.product.v1 import product_pb2

from services.order.neighbours import GrpcCatalog, GrpcMembers, GrpcStock
from services.order.ports import CatalogSku, CouponLine, CouponOffer, LockedCoupon, StockLine
from tests.fixtures.fake_services import FakeServices

VALID_TO = datetime(2027, 1, 1, tzinfo=UTC)


def test_the_catalogue_asks_for_skus_by_id_and_keeps_those_off_sale_marked(fake_services: FakeServices) -> None:
    fake_services.product.GetSkus.reply = product_pb2.GetSkusResponse(skus=[
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=101, spec={"颜色": "黑", "尺码": "L"}, price_fen=1999,
                                                 stock_status="low"),
                             product_id=10, name="茶", on_sale=True, category_id=3, brand_id=4, image="a.png",
                             category_path=[1, 3]),
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=102, price_fen=500, stock_status="in_stock"), product_id=11,
                             name="旧茶", on_sale=False)])

    found = GrpcCatalog(fake_services).skus({102, 101, 103})

    assert list(fake_services.product.GetSkus.calls[0].message.sku_ids) == [101, 102, 103]
    assert found == {101: CatalogSku(101, 10, "茶", "尺码:L;颜色:黑", 1999, "low", True, 3, 4, "a.png", (1, 3)),
                     102: CatalogSku(102, 11, "旧茶", "", 500, "in_stock", False)}


def test_the_catalogue_asks_as_the_order_service_and_reads_the_units_free_to_reserve(
        fake_services: FakeServices) -> None:
    fake_services.product.GetSkus.reply = product_pb2.GetSkusResponse(skus=[
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=101, stock=7, stock_status="low"), on_sale=True),
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=102, stock_status="sold_out"), on_sale=True),
        # a product service of the previous release counts for nobody: stock 0 beside a status with units left
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=103, stock_status="in_stock"), on_sale=True)])

    found = GrpcCatalog(fake_services).skus({101, 102, 103})

    assert fake_services.product.GetSkus.calls[0].metadata["authorization"] == "Bearer service-token"
    assert {sku_id: sku.available for sku_id, sku in found.items()} == {101: 7, 102: 0, 103: None}



def test_a_reservation_answers_the_snapshot_the_product_service_read_while_holding_the_units(
        fake_services: FakeServices) -> None:
    fake_services.product.ReserveStock.reply = product_pb2.ReserveStockResponse(
        order_no="O-1", lines=[product_pb2.StockLine(sku_id=101, quantity=2)], status="RESERVED", skus=[
            product_pb2.SkuOffer(sku=product_pb2.Sku(id=101, price_fen=1999, stock_status="sold_out"), product_id=10,
                                 name="茶", on_sale=True, category_id=3, category_path=[1, 3])])

    held = GrpcStock(fake_services).reserve("O-1", [StockLine(sku_id=101, quantity=2)])

    assert held == {101: CatalogSku(101, 10, "茶", "", 1999, "sold_out", True, 3, category_path=(1, 3), available=0)}
    assert fake_services.product.GetSkus.calls == []


def test_a_reservation_by_a_product_service_of_the_previous_release_reads_the_snapshot_with_get_skus(
        fake_services: FakeServices) -> None:
    # During a rollout old product pods keep serving (README, upgrades): their ReserveStock answers no SKUs, and
    # taking that for "none on sale" would refuse every checkout that reaches one.
    fake_services.product.ReserveStock.reply = product_pb2.ReserveStockResponse(
        order_no="O-1", lines=[product_pb2.StockLine(sku_id=101, quantity=2)], status="RESERVED")
    fake_services.product.GetSkus.reply = product_pb2.GetSkusResponse(skus=[
        product_pb2.SkuOffer(sku=product_pb2.Sku(id=101, price_fen=1999, stock_status="low"), product_id=10,
                             name="茶", on_sale=True, category_id=3)])

    held = GrpcStock(fake_services).reserve("O-1", [StockLine(sku_id=101, quantity=2)])

    assert held == {101: CatalogSku(101, 10, "茶", "", 1999, "low", True, 3)}
    assert list(fake_services.product.GetSkus.calls[0].message.sku_ids) == [101]

@pytest.mark.parametrize(("bp", "percent", "read"), [
    (9_025, 90, 9_025),     # gold with PLUS: the exact rate, never the floored percent beside it
    (0, 95, 9_500),         # a member service older than discount_bp (a rolling deploy): its percent x 100
    (0, 0, 10_000),         # nothing said: full price, as before
], ids=["basis_points", "older_member_service", "unset"])
def test_the_members_discount_is_read_in_basis_points(fake_services: FakeServices, bp: int, percent: int,
                                                      read: int) -> None:
    fake_services.member.GetDiscount.reply = member_pb2.Discount(discount_bp=bp, discount_percent=percent)

    assert GrpcMembers(fake_services).discount_bp() == read


def quote(coupon_id: int, discount_fen: int, usable: bool = True) -> member_pb2.CouponQuote:
    stamp = Timestamp()
    stamp.FromDatetime(VALID_TO)
    template = member_pb2.CouponTemplate(name=f"券{coupon_id}", valid_to=stamp)
    return member_pb2.CouponQuote(coupon=member_pb2.Coupon(id=coupon_id, template=template), usable=usable,
                                  reason="" if usable else "COUPON_THRESHOLD_NOT_MET", discount_fen=discount_fen)


def test_usable_coupons_are_the_usable_quotes_at_the_member_services_discount(fake_services: FakeServices) -> None:
    fake_services.member.QuoteCoupons.reply = member_pb2.QuoteCouponsResponse(
        quotes=[quote(1, 300), quote(2, 0, usable=False), quote(3, 500)])

    offers = GrpcMembers(fake_services).usable_coupons([CouponLine(category_id=3, amount_fen=3998,
                                                                   category_path=(1, 3))])

    sent = fake_services.member.QuoteCoupons.calls[0].message
    assert (sent.coupon_id, [(line.category_id, line.amount_fen, list(line.category_path)) for line in sent.lines]
            ) == (0, [(3, 3998, [1, 3])])
    assert offers == [CouponOffer(1, "券1", 300, VALID_TO), CouponOffer(3, "券3", 500, VALID_TO)]


def test_locking_a_coupon_answers_its_discount_and_the_categories_it_is_limited_to(fake_services: FakeServices) -> None:
    fake_services.member.LockCoupon.reply = member_pb2.LockCouponResponse(discount_fen=500, category_ids=[5, 8])
    lines = [CouponLine(category_id=3, amount_fen=1999, category_path=(1, 3)),
             CouponLine(category_id=6, amount_fen=6000, category_path=(5, 6)), CouponLine(category_id=8, amount_fen=1)]

    locked = GrpcMembers(fake_services).lock_coupon("O1", 7, lines)

    assert locked == LockedCoupon(discount_fen=500, category_ids=frozenset({5, 8}))
    assert [locked.applies_to(line) for line in lines] == [False, True, True]  # 6 is filed under 5
    assert fake_services.member.QuoteCoupons.calls == []  # one call: the lock answers the categories
    sent = fake_services.member.LockCoupon.calls[0].message
    assert (sent.order_no, sent.coupon_id, [(line.category_id, list(line.category_path)) for line in sent.lines]) == (
        "O1", 7, [(3, [1, 3]), (6, [5, 6]), (8, [])])


def test_a_coupon_of_every_category_applies_to_every_line(fake_services: FakeServices) -> None:
    fake_services.member.LockCoupon.reply = member_pb2.LockCouponResponse(discount_fen=300)

    locked = GrpcMembers(fake_services).lock_coupon("O1", 7, [CouponLine(category_id=3, amount_fen=1999)])

    assert (locked.discount_fen, locked.applies_to(CouponLine(3, 1999)), locked.applies_to(CouponLine(99, 1, (98, 99)))
            ) == (300, True, True)
