"""What a service asks the order service as itself: what became of the orders it holds something for (their states).

The product service's reservation sweep and order-paid handler ask it about the orders it holds stock for, the member
service's checkout-hold sweep about those it holds a coupon or points for (order.GetOrderStates, STATE_READERS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mall.order.v1 import order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub

from services.common.clients import ServiceClients, passed_on

AWAITING_PAYMENT = "PENDING_PAYMENT"  # the order service's status of an order that may still be paid
# The order service's statuses of a paid order going ahead: not cancelled (CANCELLED, REFUNDING, REFUNDED) nor closed.
# CANCEL_REQUESTED is one: its units stay sold until customer service approve the cancellation (order-cancelled).
GOING_AHEAD = frozenset({"PAID", "CANCEL_REQUESTED", "SHIPPED", "COMPLETED"})
# The order service's statuses an order never paid ends in (services/order/domain.py TRANSITIONS): it cancelled, or
# was closed once cancelled. It can never be paid from there.
ENDED = frozenset({"CANCELLED", "CLOSED"})


@dataclass(frozen=True)
class OrderState:
    order_no: str
    status: str
    paid: bool  # it was paid (its order-paid was published), whatever happened to it since

    @property
    def ended_unpaid(self) -> bool:
        """It was never paid and never will be (cancelled, or closed so): nothing of it is settled by order-paid."""
        return not self.paid and self.status in ENDED


class Orders(Protocol):
    def states(self, order_nos: Sequence[str]) -> dict[str, OrderState]:
        """The existing orders among `order_nos` by number (an unknown one is left out).

        A DomainError (ORDER_UNAVAILABLE, ...) when the order service cannot answer.
        """


class GrpcOrders:
    """The order service's GetOrderStates, called as the calling service itself (the RPC takes no user's token)."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def states(self, order_nos: Sequence[str]) -> dict[str, OrderState]:
        with passed_on("order"):
            reply = self.clients.get(OrderServiceStub, as_service=True).GetOrderStates(
                order_pb2.GetOrderStatesRequest(order_nos=list(order_nos)))
        return {found.order_no: OrderState(found.order_no, found.status, found.paid) for found in reply.orders}
