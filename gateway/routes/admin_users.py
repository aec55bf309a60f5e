"""Admin API: finding users (staff who serve shoppers), setting staff roles and passwords (role admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from flask import Blueprint
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import MAX_ID, Body, Page, PageQuery, operation, service
from gateway.ratelimit import DAY, Limit
from gateway.routes.auth import NewPassword, SessionsEnded, UserSummary
from services.common import formats
from services.common.auth import USER_FINDERS, Role
from services.common.formats import anchored

bp = Blueprint("admin_users", __name__, url_prefix="/api/v1/admin/users")

RoleName = Literal[tuple(role.value for role in Role)]  # type: ignore[valid-type]


class UserSearchQuery(PageQuery):
    phone: str | None = Field(None, pattern=anchored(formats.PHONE), description="exact mobile number (prefer POST "
                                                                                  "/admin/users/search: a URL is "
                                                                                  "logged by proxies)")
    id: int | None = Field(None, ge=1, le=MAX_ID, description="the user id")
    nickname: str | None = Field(None, min_length=2, max_length=32,
                                 description="the start of the nickname: at least 2 characters, and more than the "
                                             "用户 or 微信用户 every new account's starts with (400 "
                                             "USER_SEARCH_TOO_BROAD)")


class UserSearchIn(Body, UserSearchQuery):
    """The criteria and page of GET /admin/users?..., as a JSON body: `{"phone", "id", "nickname", "page",
    "page_size"}`, every one optional (at least one criterion), checked as a body (no unknown field, no "9" for 9)."""


class StaffUserOut(UserSummary):
    """A user as staff find them: the phone masked, the staff roles, when they registered."""

    created_at: datetime

    @classmethod
    def from_proto(cls, user: user_pb2.User) -> StaffUserOut:
        return cls(**UserSummary.from_proto(user).model_dump(), created_at=user.created_at.ToDatetime(tzinfo=UTC))


# Phones answer masked, and an exact phone with an id says whether that is the user's number: with no ceiling, 10^4
# guesses of a masked phone's middle digits unmask it. A customer-service agent searches a few times per conversation,
# far below these; a staff member who reaches them is refused (429 RATE_LIMITED with Retry-After). Both routes are one
# search, counted together.
SEARCH_LIMITS = (Limit("user", 30, 60, scope="admin_users.search"), Limit("user", 500, DAY, scope="admin_users.search"))

SEARCH_RULES = ("Every criterion given must match; at least one is needed (400 USER_SEARCH_EMPTY). A nickname "
                "prefix is at least 2 characters and more than a default nickname's start, 用户 or 微信用户 (400 "
                "USER_SEARCH_TOO_BROAD): a list of everyone is not offered. Each search is "
                "recorded with who asked and the ids it answered (the user service's user_lookups); phones answer "
                "masked. The two search routes share each staff member's rate limits.")


@bp.get("")
@operation(summary="Find users by exact phone, id or nickname prefix, newest first (audited)", tag="admin",
           roles=USER_FINDERS, query=UserSearchQuery, responses={200: Page[StaffUserOut]}, limits=SEARCH_LIMITS,
           description=SEARCH_RULES + " A phone in the query string is in the URL, which proxies and ingresses "
                                      "may log: search by phone with POST /admin/users/search instead.")
def search_users(query: UserSearchQuery) -> Page[StaffUserOut]:
    return find_users(query)


@bp.post("/search")
@operation(summary="Find users by exact phone, id or nickname prefix, criteria in the body (audited; preferred "
                   "for phones)", tag="admin", roles=USER_FINDERS, body=UserSearchIn,
           responses={200: Page[StaffUserOut]}, limits=SEARCH_LIMITS,
           description=SEARCH_RULES + " The same search as GET /admin/users, the criteria and page in a JSON body "
                                      "so that a phone number never appears in a URL (proxy and ingress logs).")
def search_users_by_body(body: UserSearchIn) -> Page[StaffUserOut]:
    return find_users(body)


def find_users(search: UserSearchQuery) -> Page[StaffUserOut]:
    """The one user search of both routes: the user service checks the criteria, records the lookup and masks."""
    found = service(UserServiceStub).SearchUsers(user_pb2.SearchUsersRequest(
        phone=search.phone or "", user_id=search.id or 0, nickname_prefix=search.nickname or "",
        offset=search.offset, limit=search.page_size))
    return Page[StaffUserOut].of([StaffUserOut.from_proto(user) for user in found.users], search, found.total)


class RolesIn(Body):
    roles: list[RoleName] = Field(max_length=len(Role), description="the complete set; [] makes a shopper")


class RolesSet(UserSummary):
    """The user with the roles set, and what setting them ended: a shopper made staff has no password and no session
    left (they log in by SMS, as a shopper, until an admin sets one)."""

    password_cleared: bool = Field(description="true when this made a shopper staff: the password is cleared, set "
                                               "one with POST /admin/users/{id}/password")
    sessions_ended: int = Field(description="their sessions (refresh-token families) still live that this ended; 0 "
                                            "unless password_cleared")


@bp.put("/<id:user_id>/roles")
@operation(summary="Set a user's staff roles (audited)", tag="admin", roles=(Role.ADMIN,), body=RolesIn,
           responses={200: RolesSet},
           description="Roles reach tokens at the user's next password login; removed roles also leave refreshed "
                       "sessions, and the user's access tokens issued before end at once (401 SESSION_ENDED: they "
                       "refresh). Granting the first staff role clears the password (a shopper's may have been set "
                       "by SMS) and ends every session of theirs (audited as password_cleared in user_role_changes): "
                       "set one with POST /admin/users/{id}/password; until then they log in by SMS as a shopper. "
                       "Changing between staff roles or removing them all keeps it. No one changes their own roles "
                       "(422 OWN_ROLES), and the shop's last admin keeps the admin role (422 LAST_ADMIN). The answer says whether the password was cleared (password_cleared) and how "
                       "many live sessions that ended (sessions_ended).")
def set_roles(user_id: int, body: RolesIn) -> RolesSet:
    reply = service(UserServiceStub).SetUserRoles(
        user_pb2.SetUserRolesRequest(user_id=user_id, roles=sorted(set(body.roles))))
    return RolesSet(**UserSummary.from_proto(reply.user).model_dump(), password_cleared=reply.password_cleared,
                    sessions_ended=reply.sessions_ended)


class StaffPasswordIn(Body):
    new_password: str = NewPassword


@bp.post("/<id:user_id>/password")
@operation(summary="Set a staff member's password (audited); ends every session of theirs", tag="admin",
           roles=(Role.ADMIN,), body=StaffPasswordIn, responses={200: SessionsEnded},
           description="Staff cannot set their password with an SMS code (403 STAFF_PASSWORD_BY_ADMIN): an admin "
                       "sets it here and hands it over. One-time: it logs in only to be changed by its owner, with an SMS "
                       "code sent to their phone (POST /auth/login/password, 403 PASSWORD_CHANGE_REQUIRED), so the "
                       "admin cannot log in as them with it. Recorded in the user service's user_password_sets. 422 "
                       "NOT_STAFF for a shopper (they reset their own by SMS), 422 OWN_PASSWORD for one's own "
                       "(PUT /me/password with the current one), 400 PASSWORD_TOO_WEAK.")
def set_staff_password(user_id: int, body: StaffPasswordIn) -> SessionsEnded:
    reply = service(UserServiceStub).SetStaffPassword(
        user_pb2.SetStaffPasswordRequest(user_id=user_id, new_password=body.new_password))
    return SessionsEnded(sessions_ended=reply.sessions_ended)
