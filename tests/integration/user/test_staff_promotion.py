"""A shopper made staff on PostgreSQL and SQLite: their SMS-set password carries no staff powers, an admin's does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from services.common.errors import Forbidden, Unauthenticated
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens, user_role_changes, users
from services.user.passwords import Passwords
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer

pytestmark = pytest.mark.integration

PHONE = "13912345678"
ADMIN_PHONE = "13800000000"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords()


def code(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, purpose: str, now: datetime) -> str:
    return service.send_sms_code(uow(), ConsoleSms(), issuer, phone=PHONE, purpose=purpose, now=now).dev_code


@pytest.fixture
def promoted(uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, passwords: Passwords) -> int:
    """A shopper who set a password by SMS, logged in with it, then was made an operator by an admin: their id."""
    admin = service.create_staff(uow(), passwords, phone=ADMIN_PHONE, role="admin", password="adminpass1", now=T0)
    shopper = service.login_with_sms(uow(), issuer, phone=PHONE, code=code(uow, issuer, "login", T0), now=T0)
    service.reset_password(uow(), issuer, passwords, phone=PHONE, code=code(uow, issuer, "reset", T0),
                           new_password="phonepass1", now=T0)
    service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="phonepass1", now=T0)
    service.set_roles(uow(), issuer, actor_id=admin.id or 0, user_id=shopper.user.id or 0, roles=["operator"], now=T0)
    return shopper.user.id or 0


def test_an_sms_set_password_logs_in_no_more_once_its_account_is_made_staff(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, passwords: Passwords, promoted: int) -> None:
    with pytest.raises(Unauthenticated) as raised:
        service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="phonepass1",
                                    now=T0 + timedelta(minutes=1))

    assert raised.value.code == "INVALID_CREDENTIALS"


def test_the_promoted_account_logs_in_by_sms_as_a_shopper(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, promoted: int) -> None:
    later = T0 + timedelta(minutes=2)

    session = service.login_with_sms(uow(), issuer, phone=PHONE, code=code(uow, issuer, "login", later), now=later)

    assert (session.user.id, session.user.roles, session.roles) == (promoted, "operator", frozenset())


def test_promotion_clears_the_stored_password_ends_the_sessions_and_is_audited_as_such(
        engine: Engine, promoted: int) -> None:
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash, users.c.roles).where(users.c.id == promoted)).one()
        live = conn.execute(select(refresh_tokens.c.id).where(refresh_tokens.c.user_id == promoted,
                                                              refresh_tokens.c.revoked_at.is_(None))).all()
        audit = conn.execute(select(user_role_changes.c.before, user_role_changes.c.after,
                                    user_role_changes.c.password_cleared)
                             .where(user_role_changes.c.user_id == promoted)).all()

    assert (tuple(stored), live, [tuple(row) for row in audit]) == ((None, "operator"), [], [("", "operator", True)])


def test_the_password_an_admin_sets_then_carries_the_staff_role(
        uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer, passwords: Passwords, promoted: int) -> None:
    admin = service.login_with_password(uow(), issuer, passwords, phone=ADMIN_PHONE, password="adminpass1", now=T0)
    service.set_staff_password(uow(), issuer, passwords, actor_id=admin.user.id or 0, user_id=promoted,
                               new_password="staffpass1", now=T0 + timedelta(minutes=3))

    with pytest.raises(Forbidden) as raised:  # one-time: the admin knows it, its owner changes it first
        service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="staffpass1",
                                    now=T0 + timedelta(minutes=4))
    session = service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="staffpass1",
                                          new_password="mypass2026",
                                          sms_code=code(uow, issuer, "reset", T0 + timedelta(minutes=5)),
                                          now=T0 + timedelta(minutes=5))

    assert (raised.value.code, session.roles) == ("PASSWORD_CHANGE_REQUIRED", frozenset({"operator"}))
    assert service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="mypass2026",
                                       now=T0 + timedelta(minutes=6)).roles == frozenset({"operator"})
