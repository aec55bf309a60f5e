"""The member service's ports on the other services' gRPC APIs, errors passed on as theirs."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub

from services.common.auth import caller_var
from services.common.clients import ServiceClients, passed_on


class GrpcPayers:
    """Who WeChat Pay charges for a shopper, or pays a withdrawal to (the user service knows their bound openid): asked
    with the caller's token (the shopper recharging, finance approving), or as the member service itself when there
    is no caller, as in the payout job sending a transfer WeChat Pay never received again."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def payer_openid(self, user_id: int) -> str:
        with passed_on("user"):
            return self.clients.get(UserServiceStub, as_service=caller_var.get() is None).GetWechatPayer(
                user_pb2.GetWechatPayerRequest(user_id=user_id)).openid

    def payee_name(self, user_id: int) -> str:
        """Asked as the member service itself, whoever the caller: the user service gives the name to no one else."""
        with passed_on("user"):
            return self.clients.get(UserServiceStub, as_service=True).GetPayeeName(
                user_pb2.GetPayeeNameRequest(user_id=user_id)).real_name


class GrpcCategories:
    """The catalogue's categories, read from the product service's category tree (ListCategories, a read: retried
    on UNAVAILABLE) with the caller's token; a product service that does not answer is 503 PRODUCT_UNAVAILABLE."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def unknown(self, category_ids: Collection[int]) -> list[int]:
        with passed_on("product"):
            tree = self.clients.get(ProductServiceStub).ListCategories(product_pb2.ListCategoriesRequest())
        known = set(_ids(tree.items))
        return sorted(set(category_ids) - known)


def _ids(categories: Iterable[product_pb2.Category]) -> Iterable[int]:
    for category in categories:
        yield category.id
        yield from _ids(category.children)
