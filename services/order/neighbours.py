"""The order service's ports on the other services' gRPC APIs (services.order.ports), errors passed on as theirs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

import grpc
from mall.member.v1 import member_pb2
from mall.member.v1.member_pb2_grpc import MemberServiceStub
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub

from services.common.clients import KIND_OF_STATUS, ServiceClients, passed_on
from services.common.errors import DomainError
from services.common.formats import discount_bp
from services.order.domain import Address
from services.order.ports import CatalogSku, CouponLine, CouponOffer, LockedCoupon, StockLine, WalletCharge


def spec_text(spec: dict[str, str]) -> str:
    return ";".join(f"{name}:{value}" for name, value in sorted(spec.items()))


class GrpcCatalog:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def skus(self, sku_ids: set[int]) -> dict[int, CatalogSku]:
        with passed_on("product"):
            # As the order service itself: the product service tells it (only it) the units free to reserve.
            found = self.clients.get(ProductServiceStub, as_service=True).GetSkus(product_pb2.GetSkusRequest(sku_ids=sorted(sku_ids)))
        return _catalog_skus(found.skus)


def _catalog_skus(offers: Iterable[product_pb2.SkuOffer]) -> dict[int, CatalogSku]:
    return {offer.sku.id: CatalogSku(sku_id=offer.sku.id, product_id=offer.product_id, name=offer.name,
                                     spec=spec_text(dict(offer.sku.spec)), price_fen=offer.sku.price_fen,
                                     stock_status=offer.sku.stock_status, on_sale=offer.on_sale,
                                     category_id=offer.category_id, brand_id=offer.brand_id, image=offer.image,
                                     category_path=tuple(offer.category_path),
                                     max_per_shopper=offer.max_per_shopper, available=_available(offer.sku))
            for offer in offers}


def _available(sku: product_pb2.Sku) -> int | None:
    """The units free to reserve; None when the product service did not say (one of the previous release answers
    stock 0, as to shoppers, for a SKU whose status says some are left)."""
    return sku.stock if sku.stock or sku.stock_status == "sold_out" else None


class GrpcStock:
    """Stock reservations: the product service takes them only from the order service calling as itself."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
        with passed_on("product"):
            held = self.clients.get(ProductServiceStub, as_service=True).ReserveStock(product_pb2.ReserveStockRequest(
                order_no=order_no, lines=[product_pb2.StockLine(sku_id=line.sku_id, quantity=line.quantity)
                                          for line in lines]))
        if held.lines and not held.skus:
            # A product service of the previous release (old pods keep serving during a rollout) answers no
            # snapshot: read it as before, rather than take every SKU for one no longer on sale.
            return GrpcCatalog(self.clients).skus({line.sku_id for line in held.lines})
        return _catalog_skus(held.skus)

    def release(self, order_no: str) -> None:
        with passed_on("product"):
            self.clients.get(ProductServiceStub, as_service=True).ReleaseReservation(product_pb2.ReservationRef(order_no=order_no))


def _lines(lines: list[CouponLine]) -> list[member_pb2.OrderLine]:
    return [member_pb2.OrderLine(category_id=line.category_id, amount_fen=line.amount_fen,
                                 category_path=line.category_path) for line in lines]


class GrpcMembers:
    """The caller's membership; the member service acts for the shopper whose token the call carries."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    @property
    def stub(self) -> MemberServiceStub:
        return self.clients.get(MemberServiceStub)

    def discount_bp(self) -> int:
        with passed_on("member"):
            discount = self.stub.GetDiscount(member_pb2.GetDiscountRequest())
        return discount_bp(discount.discount_bp, discount.discount_percent)

    def quote_coupon(self, coupon_id: int, lines: list[CouponLine]) -> int:
        with passed_on("member"):
            quotes = self.stub.QuoteCoupons(member_pb2.QuoteCouponsRequest(lines=_lines(lines), coupon_id=coupon_id))
        quote = next((quote for quote in quotes.quotes if quote.coupon.id == coupon_id), None)
        if quote is None:
            raise DomainError("COUPON_NOT_FOUND", "no such coupon", kind=KIND_OF_STATUS[grpc.StatusCode.NOT_FOUND])
        if not quote.usable:
            raise DomainError(quote.reason or "COUPON_NOT_USABLE", "this coupon cannot be used for this order",
                              details={"coupon_id": coupon_id})
        return quote.discount_fen

    def usable_coupons(self, lines: list[CouponLine]) -> list[CouponOffer]:
        with passed_on("member"):
            quotes = self.stub.QuoteCoupons(member_pb2.QuoteCouponsRequest(lines=_lines(lines))).quotes
        return [CouponOffer(coupon_id=quote.coupon.id, name=quote.coupon.template.name,
                            discount_fen=quote.discount_fen, valid_to=quote.coupon.template.valid_to.ToDatetime(UTC))
                for quote in quotes if quote.usable]

    def lock_coupon(self, order_no: str, coupon_id: int, lines: list[CouponLine]) -> LockedCoupon:
        with passed_on("member"):
            locked = self.stub.LockCoupon(member_pb2.LockCouponRequest(order_no=order_no, coupon_id=coupon_id,
                                                                       lines=_lines(lines)))
        return LockedCoupon(discount_fen=locked.discount_fen, category_ids=frozenset(locked.category_ids))

    def release_coupon(self, order_no: str) -> None:
        with passed_on("member"):
            self.stub.ReleaseCoupon(member_pb2.ReleaseCouponRequest(order_no=order_no))

    def quote_points(self, points: int, payable_fen: int) -> tuple[int, int]:
        with passed_on("member"):
            quote = self.stub.QuotePoints(member_pb2.QuotePointsRequest(points=points, payable_fen=payable_fen))
        return quote.usable_points, quote.discount_fen

    def lock_points(self, order_no: str, points: int, payable_fen: int) -> tuple[int, int]:
        with passed_on("member"):
            locked = self.stub.LockPoints(member_pb2.LockPointsRequest(order_no=order_no, points=points,
                                                                       payable_fen=payable_fen))
        return locked.points, locked.discount_fen

    def release_points(self, order_no: str) -> None:
        with passed_on("member"):
            self.stub.ReleasePoints(member_pb2.ReleasePointsRequest(order_no=order_no))

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        with passed_on("member"):
            self.stub.PayWithBalance(member_pb2.PayWithBalanceRequest(order_no=order_no, amount_fen=amount_fen))

    def void_balance_payment(self, order_no: str) -> WalletCharge | None:
        # As the order service itself: only it may close any wallet's payment, and its reconciliation has no caller.
        with passed_on("member"):
            paid = self.clients.get(MemberServiceStub, as_service=True).VoidBalancePayment(
                member_pb2.VoidBalancePaymentRequest(order_no=order_no))
        return WalletCharge(user_id=paid.user_id, amount_fen=paid.amount_fen) if paid.charged else None

    def refund_to_balance(self, refund_no: str, order_no: str, user_id: int, amount_fen: int) -> None:
        # As the order service itself: the refund engine checked the amount against what was paid, and
        # the reconciliation job that retries it has no caller at all.
        with passed_on("member"):
            self.clients.get(MemberServiceStub, as_service=True).RefundToBalance(member_pb2.RefundToBalanceRequest(refund_no=refund_no, order_no=order_no,
                                                                        user_id=user_id, amount_fen=amount_fen))


class GrpcUsers:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def buyer_address(self, user_id: int, address_id: int) -> Address | None:
        with passed_on("user"):
            buyer = self.clients.get(UserServiceStub).GetBuyer(user_pb2.GetBuyerRequest(user_id=user_id,
                                                                                      address_id=address_id))
        if not buyer.verified:
            return None
        found = buyer.address
        return Address(name=found.receiver_name, phone=found.receiver_phone, province=found.province,
                       city=found.city, district=found.district, detail=found.detail)

    def payer_openid(self, user_id: int) -> str:
        with passed_on("user"):
            return self.clients.get(UserServiceStub).GetWechatPayer(
                user_pb2.GetWechatPayerRequest(user_id=user_id)).openid
