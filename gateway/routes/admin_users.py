"""Admin API: staff accounts and their roles (role admin)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import Body, operation, service
from gateway.routes.auth import UserSummary
from services.common.auth import Role

bp = Blueprint("admin_users", __name__, url_prefix="/api/v1/admin/users")

RoleName = Literal[tuple(role.value for role in Role)]  # type: ignore[valid-type]


class RolesIn(Body):
    roles: list[RoleName] = Field(max_length=len(Role), description="the complete set; [] makes a shopper")


@bp.put("/<id:user_id>/roles")
@operation(summary="Set a user's staff roles (audited)", tag="admin", roles=(Role.ADMIN,), body=RolesIn,
           responses={200: UserSummary},
           description="Roles reach tokens at the user's next password login; removed roles also leave refreshed "
                       "sessions. No one changes their own roles (422 OWN_ROLES).")
def set_roles(user_id: int, body: RolesIn) -> UserSummary:
    return UserSummary.from_proto(service(UserServiceStub).SetUserRoles(
        user_pb2.SetUserRolesRequest(user_id=user_id, roles=sorted(set(body.roles)))))
