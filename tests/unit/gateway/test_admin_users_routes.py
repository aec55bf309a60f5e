"""GET /admin/users and POST /admin/users/search (staff who serve shoppers) and PUT /admin/users/{id}/roles
and POST /admin/users/{id}/password (admins): the user service decides."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.user.v1 import user_pb2

ROLES = "/api/v1/admin/users/7/roles"


@pytest.mark.parametrize("roles", ["", "operator", "finance,customer_service"])
def test_only_admins_may_set_roles(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.put(ROLES, json={"roles": ["finance"]}, headers=bearer(roles=roles))

    assert (response.status_code, clients.user.SetUserRoles.calls) == (403, [])


def test_an_admin_sets_roles_and_gets_the_user_back(client: FlaskClient, clients, bearer) -> None:
    clients.user.SetUserRoles.reply = user_pb2.SetUserRolesResponse(user=user_pb2.User(
        id=7, phone_masked="139****0007", nickname="员工", roles=["finance", "operator"]))

    response = client.put(ROLES, json={"roles": ["operator", "finance", "operator"]}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()) == (200, {
        "id": 7, "phone": "139****0007", "nickname": "员工", "avatar_url": "", "roles": ["finance", "operator"],
        "password_cleared": False, "sessions_ended": 0})
    assert clients.user.SetUserRoles.calls[0].message == user_pb2.SetUserRolesRequest(
        user_id=7, roles=["finance", "operator"])


def test_making_a_shopper_staff_says_their_password_was_cleared_and_their_sessions_ended(
        client: FlaskClient, clients, bearer) -> None:
    clients.user.SetUserRoles.reply = user_pb2.SetUserRolesResponse(
        user=user_pb2.User(id=7, phone_masked="139****0007", nickname="小明", roles=["operator"]),
        password_cleared=True, sessions_ended=2)

    body = client.put(ROLES, json={"roles": ["operator"]}, headers=bearer(roles="admin")).get_json()

    assert (body["roles"], body["password_cleared"], body["sessions_ended"]) == (["operator"], True, 2)


def test_the_openapi_document_says_what_setting_roles_answers(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    reply = spec["paths"]["/api/v1/admin/users/{user_id}/roles"]["put"]["responses"]["200"]["content"][
        "application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = spec["components"]["schemas"][reply]["properties"]
    assert {name: properties[name]["type"] for name in ("password_cleared", "sessions_ended")} == {
        "password_cleared": "boolean", "sessions_ended": "integer"}


@pytest.mark.parametrize("body", [{"roles": ["root"]}, {"roles": "admin"}, {}, {"roles": [], "phone": "1"}])
def test_malformed_roles_are_400_and_nothing_is_asked(client: FlaskClient, clients, bearer, body: dict) -> None:
    response = client.put(ROLES, json=body, headers=bearer(roles="admin"))

    assert (response.status_code, clients.user.SetUserRoles.calls) == (400, [])


SEARCH = "/api/v1/admin/users"
FOUND = user_pb2.User(id=9, phone_masked="139****5678", nickname="小明", roles=[],
                      created_at=Timestamp(seconds=1_795_680_000))


@pytest.mark.parametrize("roles", ["admin", "operator", "customer_service"])
def test_staff_who_serve_shoppers_find_a_user_by_phone_masked(client: FlaskClient, clients, bearer, roles: str) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[FOUND], total=1)

    response = client.get(f"{SEARCH}?phone=13912345678", headers=bearer(roles=roles))

    assert (response.status_code, response.get_json()) == (200, {"items": [{
        "id": 9, "phone": "139****5678", "nickname": "小明", "avatar_url": "", "roles": [],
        "created_at": "2026-11-26T08:00:00Z"}], "page": 1, "page_size": 20, "total": 1})
    assert clients.user.SearchUsers.calls[0].message == user_pb2.SearchUsersRequest(phone="13912345678", limit=20)


def test_id_nickname_and_page_are_passed_on(client: FlaskClient, clients, bearer) -> None:
    client.get(f"{SEARCH}?id=9&nickname=小明&page=3&page_size=10", headers=bearer(roles="customer_service"))

    assert clients.user.SearchUsers.calls[0].message == user_pb2.SearchUsersRequest(
        user_id=9, nickname_prefix="小明", offset=20, limit=10)


@pytest.mark.parametrize("roles", ["", "finance"])
def test_shoppers_and_finance_may_not_look_users_up(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.get(f"{SEARCH}?phone=13912345678", headers=bearer(roles=roles))

    assert (response.status_code, clients.user.SearchUsers.calls) == (403, [])


@pytest.mark.parametrize("query", ["phone=1391234567", "phone=139123456789", "id=0", "id=x", "nickname=", "nickname=x",
                                   "nickname=" + "x" * 33, "email=a@b.c", "page_size=101"])
def test_malformed_searches_are_400_and_nothing_is_asked(client: FlaskClient, clients, bearer, query: str) -> None:
    response = client.get(f"{SEARCH}?{query}", headers=bearer(roles="admin"))

    assert (response.status_code, clients.user.SearchUsers.calls) == (400, [])


def test_the_gateways_request_log_names_the_path_without_the_query(client: FlaskClient, clients, bearer,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.app"):
        client.get("/api/v1/admin/users?phone=13800138000", headers=bearer(roles="operator"))

    assert [record.getMessage() for record in caplog.records if record.name == "gateway.app"] == [
        "GET /api/v1/admin/users -> 200"]


BODY_SEARCH = "/api/v1/admin/users/search"


@pytest.mark.parametrize("roles", ["admin", "operator", "customer_service"])
def test_a_search_in_the_body_answers_as_the_query_does_with_the_phone_out_of_the_url(
        client: FlaskClient, clients, bearer, roles: str, caplog: pytest.LogCaptureFixture) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[FOUND], total=1)

    by_query = client.get(f"{SEARCH}?phone=13912345678", headers=bearer(roles=roles))
    with caplog.at_level(logging.INFO, logger="gateway.app"):
        by_body = client.post(BODY_SEARCH, json={"phone": "13912345678"}, headers=bearer(roles=roles))

    assert (by_body.status_code, by_body.get_json()) == (200, by_query.get_json())
    assert [call.message for call in clients.user.SearchUsers.calls] == [
        user_pb2.SearchUsersRequest(phone="13912345678", limit=20)] * 2
    assert [record.getMessage() for record in caplog.records if record.name == "gateway.app"] == [
        "POST /api/v1/admin/users/search -> 200"]


def test_id_nickname_and_page_in_the_body_are_passed_on_and_the_page_answered(client: FlaskClient, clients,
                                                                              bearer) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[FOUND], total=21)

    body = client.post(BODY_SEARCH, json={"id": 9, "nickname": "小明", "page": 3, "page_size": 10},
                       headers=bearer(roles="customer_service")).get_json()

    assert clients.user.SearchUsers.calls[0].message == user_pb2.SearchUsersRequest(
        user_id=9, nickname_prefix="小明", offset=20, limit=10)
    assert (body["page"], body["page_size"], body["total"]) == (3, 10, 21)


@pytest.mark.parametrize("roles", ["", "finance"])
def test_shoppers_and_finance_may_not_search_users_by_body(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.post(BODY_SEARCH, json={"phone": "13912345678"}, headers=bearer(roles=roles))

    assert (response.status_code, clients.user.SearchUsers.calls) == (403, [])


@pytest.mark.parametrize("body", [{"phone": "1391234567"}, {"phone": 13912345678}, {"id": 0}, {"id": "9"},
                                  {"nickname": ""}, {"nickname": "x"}, {"nickname": "x" * 33}, {"email": "a@b.c"}, {"page_size": 101},
                                  {"id": 9, "page": "2"}, [], "13912345678"])
def test_malformed_body_searches_are_400_and_nothing_is_asked(client: FlaskClient, clients, bearer,
                                                              body: object) -> None:
    response = client.post(BODY_SEARCH, json=body, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"], clients.user.SearchUsers.calls) == (
        400, "INVALID_REQUEST", [])
    assert "13912345678" not in response.get_data(as_text=True)


def test_a_body_search_with_criteria_in_the_query_too_is_400(client: FlaskClient, clients, bearer) -> None:
    response = client.post(f"{BODY_SEARCH}?phone=13912345678", json={"id": 9}, headers=bearer(roles="admin"))

    assert (response.status_code, clients.user.SearchUsers.calls) == (400, [])


def test_the_31st_search_of_a_staff_member_within_a_minute_is_429_by_either_route_and_not_asked(
        client: FlaskClient, clients, bearer, frozen_clock) -> None:
    mine = [client.get(f"{SEARCH}?id=9&phone=1391234{n:04d}", headers=bearer(roles="customer_service", user_id=7))
            if n % 2 else client.post(BODY_SEARCH, json={"id": 9, "phone": f"1391234{n:04d}"},
                                      headers=bearer(roles="customer_service", user_id=7))
            for n in range(31)]
    theirs = client.post(BODY_SEARCH, json={"id": 9}, headers=bearer(roles="customer_service", user_id=8))

    assert [r.status_code for r in mine] == [200] * 30 + [429]
    assert (mine[-1].get_json()["error"]["code"], mine[-1].headers["Retry-After"], theirs.status_code) == (
        "RATE_LIMITED", "60", 200)
    assert len(clients.user.SearchUsers.calls) == 31  # 30 of theirs, 1 of the other staff member's


def test_the_501st_search_of_a_staff_member_within_a_day_is_429_and_not_asked(client: FlaskClient, clients, bearer,
                                                                              frozen_clock) -> None:
    codes = []
    for _ in range(501):
        frozen_clock.now += 2.5  # 24 in any minute: under the per-minute limit
        codes.append(client.post(BODY_SEARCH, json={"id": 9}, headers=bearer(roles="operator")).status_code)

    assert codes == [200] * 500 + [429]
    assert len(clients.user.SearchUsers.calls) == 500


PASSWORD = "/api/v1/admin/users/7/password"


@pytest.mark.parametrize("roles", ["", "operator", "finance,customer_service"])
def test_only_admins_may_set_a_staff_password(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.post(PASSWORD, json={"new_password": "staffpass1"}, headers=bearer(roles=roles))

    assert (response.status_code, clients.user.SetStaffPassword.calls) == (403, [])


def test_an_admin_sets_a_staff_password_and_gets_the_sessions_ended(client: FlaskClient, clients, bearer) -> None:
    clients.user.SetStaffPassword.reply = user_pb2.LogoutResponse(sessions_ended=2)

    response = client.post(PASSWORD, json={"new_password": "staffpass1"}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()) == (200, {"sessions_ended": 2})
    assert clients.user.SetStaffPassword.calls[0].message == user_pb2.SetStaffPasswordRequest(
        user_id=7, new_password="staffpass1")
