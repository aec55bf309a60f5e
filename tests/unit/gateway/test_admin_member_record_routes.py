"""GET /admin/members/{user_id}: the staff who answer shoppers read a member's record and a page of their points
entries (the member service decides, audits and refuses again)."""

from __future__ import annotations

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2

from services.common.auth import MEMBER_READERS
from services.common.grpc_server import CODE_KEY

RECORD = "/api/v1/admin/members/31"
AT = Timestamp(seconds=1_795_680_000)  # 2026-11-26T08:00:00Z
FOUND = member_pb2.LookUpMemberResponse(
    member=member_pb2.Member(member_no="M0031", level="silver", discount_percent=98, points_multiplier_percent=120,
                             points=390, balance_fen=12_345, pending_fen=2_000, bonus_fen=500, points_owed=100,
                             coupons_available=2, total_spend_fen=250_000, channel="self", invite_code="AB12CD",
                             joined_at=AT),
    points_entries=[member_pb2.LedgerEntry(id=7, account="points", amount=-30, balance_after=390,
                                           kind="order_refunded", reference="R1", created_at=AT)],
    points_entries_total=21)


@pytest.mark.parametrize("roles", ["admin", "customer_service", "finance"])
def test_staff_who_answer_shoppers_read_the_member_record_with_points_owed_and_a_page_of_points(
        client: FlaskClient, clients, bearer, roles: str) -> None:
    clients.member.LookUpMember.reply = FOUND

    response = client.get(f"{RECORD}?page=3&page_size=10", headers=bearer(roles=roles))

    assert (response.status_code, response.get_json()) == (200, {
        "user_id": 31, "member_no": "M0031", "level": "silver", "discount_rate": 0.98, "points_multiplier": 1.2,
        "points": 390, "balance_fen": 12_345, "pending_fen": 2_000, "bonus_fen": 500, "points_owed": 100,
        "coupons_available": 2, "total_spend_fen": 250_000, "channel": "self", "invite_code": "AB12CD",
        "joined_at": "2026-11-26T08:00:00Z", "plan": None,
        "points_entries": {"items": [{"id": 7, "account": "points", "amount": -30, "balance_after": 390,
                                      "kind": "order_refunded", "reference": "R1",
                                      "created_at": "2026-11-26T08:00:00Z"}],
                           "page": 3, "page_size": 10, "total": 21}})
    assert [call.message for call in clients.member.LookUpMember.calls] == [
        member_pb2.LookUpMemberRequest(user_id=31, offset=20, limit=10)]


@pytest.mark.parametrize("roles", ["", "operator"], ids=["shopper", "operator"])
def test_shoppers_and_operators_get_403_and_nothing_is_asked(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.get(RECORD, headers=bearer(roles=roles))

    assert (response.status_code, response.get_json()["error"]["code"], clients.member.LookUpMember.calls) == (
        403, "FORBIDDEN", [])


def test_a_user_who_is_not_a_member_is_404_in_the_error_format(client: FlaskClient, clients, bearer,
                                                               rpc_error) -> None:
    clients.member.LookUpMember.error = rpc_error(grpc.StatusCode.NOT_FOUND, "user 31 is not a member",
                                                  ((CODE_KEY, "MEMBER_NOT_FOUND"),))

    response = client.get(RECORD, headers={**bearer(roles="customer_service"), "X-Request-ID": "r-31"})

    assert (response.status_code, response.get_json()) == (404, {"error": {
        "code": "MEMBER_NOT_FOUND", "message": "user 31 is not a member", "request_id": "r-31"}})


@pytest.mark.parametrize(("path", "status"), [("/api/v1/admin/members/0", 404), ("/api/v1/admin/members/x", 404),
                                              ("/api/v1/admin/members/31?page_size=101", 400),
                                              ("/api/v1/admin/members/31?page=0", 400)])
def test_a_malformed_user_id_or_page_asks_nothing(client: FlaskClient, clients, bearer, path: str,
                                                  status: int) -> None:
    response = client.get(path, headers=bearer(roles="admin"))

    assert (response.status_code, clients.member.LookUpMember.calls) == (status, [])


def test_the_openapi_document_gives_the_route_its_roles_and_the_points_owed(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    entry = spec["paths"]["/api/v1/admin/members/{user_id}"]["get"]
    reply = entry["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = spec["components"]["schemas"][reply]["properties"]
    assert (set(entry["x-roles"]), properties["points_owed"]["type"], "404 MEMBER_NOT_FOUND" in entry["description"]) == (
        set(MEMBER_READERS), "integer", True)
