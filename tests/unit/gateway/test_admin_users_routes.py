"""PUT /admin/users/{id}/roles: admins only, roles from the one Role enum, the user service decides the rest."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

ROLES = "/api/v1/admin/users/7/roles"


@pytest.mark.parametrize("roles", ["", "operator", "finance,customer_service"])
def test_only_admins_may_set_roles(client: FlaskClient, clients, bearer, roles: str) -> None:
    response = client.put(ROLES, json={"roles": ["finance"]}, headers=bearer(roles=roles))

    assert (response.status_code, clients.user.SetUserRoles.calls) == (403, [])


def test_an_admin_sets_roles_and_gets_the_user_back(client: FlaskClient, clients, bearer) -> None:
    clients.user.SetUserRoles.reply = user_pb2.User(id=7, phone_masked="139****0007", nickname="员工",
                                                    roles=["finance", "operator"])

    response = client.put(ROLES, json={"roles": ["operator", "finance", "operator"]}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()) == (200, {
        "id": 7, "phone": "139****0007", "nickname": "员工", "avatar_url": "", "roles": ["finance", "operator"]})
    assert clients.user.SetUserRoles.calls[0].message == user_pb2.SetUserRolesRequest(
        user_id=7, roles=["finance", "operator"])


@pytest.mark.parametrize("body", [{"roles": ["root"]}, {"roles": "admin"}, {}, {"roles": [], "phone": "1"}])
def test_malformed_roles_are_400_and_nothing_is_asked(client: FlaskClient, clients, bearer, body: dict) -> None:
    response = client.put(ROLES, json=body, headers=bearer(roles="admin"))

    assert (response.status_code, clients.user.SetUserRoles.calls) == (400, [])
