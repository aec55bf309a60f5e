"""The one page rule every list RPC applies to its request's offset and limit."""

from __future__ import annotations

import pytest
from mall.order.v1 import order_pb2
from mall.user.v1 import user_pb2

from services.common.grpc_server import MAX_PAGE, page


@pytest.mark.parametrize(("offset", "limit", "expected"), [
    (0, 0, {"offset": 0, "limit": 20}),
    (40, 10, {"offset": 40, "limit": 10}),
    (-5, -3, {"offset": 0, "limit": 1}),
    (0, MAX_PAGE + 1, {"offset": 0, "limit": MAX_PAGE}),
])
def test_a_list_request_reads_a_page_of_one_to_max_rows_from_offset_zero_or_later(
        offset: int, limit: int, expected: dict[str, int]) -> None:
    assert page(order_pb2.ListOrdersRequest(offset=offset, limit=limit)) == expected


def test_every_service_request_with_offset_and_limit_is_paged_alike() -> None:
    request = user_pb2.SearchUsersRequest(offset=7, limit=500)

    assert page(request) == {"offset": 7, "limit": MAX_PAGE}
