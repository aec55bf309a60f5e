"""Whether a shopper has bound a phone, asked of the user service as the member service itself: before a signup and
before order-paid joins its buyer by purchase (M1), the one way the member service asks.

Apart from neighbours.py: the consume role imports this module, and deploy/k8s/generate.py opens a role's egress to
the services its modules import the stubs of; this one reaches the user service alone.
"""

from __future__ import annotations

from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub

from services.common.clients import ServiceClients, passed_on


class GrpcBuyerPhones:
    """`user.HasPhone`, asked as the member service whoever the caller (an event has none): True when the user has
    bound a phone. A user service that does not answer (or an old one, without the RPC) is a DomainError
    USER_UNAVAILABLE: 503 to a signup, a retry of the event to the consumer."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def has_phone(self, user_id: int) -> bool:
        with passed_on("user"):
            return self.clients.get(UserServiceStub, as_service=True).HasPhone(
                user_pb2.HasPhoneRequest(user_id=user_id)).has_phone
