"""The member service's ports on the other services' gRPC APIs, errors passed on as theirs."""

from __future__ import annotations

from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub

from services.common.clients import ServiceClients, passed_on


class GrpcPayers:
    """Who WeChat Pay charges for a shopper (the user service knows their bound openid)."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def payer_openid(self, user_id: int) -> str:
        with passed_on("user"):
            return self.clients.get(UserServiceStub).GetWechatPayer(
                user_pb2.GetWechatPayerRequest(user_id=user_id)).openid
