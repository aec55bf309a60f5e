"""A staff session ends STAFF_SESSION_MAX_HOURS after its password login, on PostgreSQL and SQLite, and migration
0013 gives the live refresh tokens stored before it their family's login time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, column, insert, select, table

from services.common import migrations
from services.common.db import UTCDateTime, make_engine
from services.common.errors import DomainError
from services.user import service
from services.user.db import SqlUserUnitOfWork, refresh_tokens
from services.user.passwords import Passwords
from services.user.tokens import TokenIssuer
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def stored_sessions(engine: Engine) -> list[tuple[datetime, datetime, datetime | None]]:
    """(created_at, expires_at, session_started_at) of every refresh token, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(refresh_tokens.c.created_at, refresh_tokens.c.expires_at,
                                   refresh_tokens.c.session_started_at).order_by(refresh_tokens.c.id)).all()
    return [tuple(row) for row in rows]


def test_a_staff_session_refreshed_through_the_day_ends_twelve_hours_after_its_login(
        engine: Engine, uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    passwords = Passwords()
    service.create_staff(uow(), passwords, phone=PHONE, role="finance", password="abcd1234", now=T0)
    session = service.login_with_password(uow(), issuer, passwords, phone=PHONE, password="abcd1234", now=T0)
    for hour in (4, 8, 11):
        session = service.refresh_session(uow(), issuer, refresh_token=session.refresh_token,
                                          now=T0 + timedelta(hours=hour))

    with pytest.raises(DomainError) as raised:
        service.refresh_session(uow(), issuer, refresh_token=session.refresh_token, now=T0 + timedelta(hours=12))

    assert raised.value.code == "REFRESH_TOKEN_EXPIRED"
    assert stored_sessions(engine) == [(T0 + timedelta(hours=hour), T0 + timedelta(hours=12), T0)
                                       for hour in (0, 4, 8, 11)]


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A user database of its own at revision 0012 (before refresh tokens kept their session's start)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'user.db'}", None
    else:
        name = session_database_name("it", "sessionstart")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("user"), "0012")
    yield url
    if name:
        drop_databases([name])


def test_migration_0013_dates_each_live_token_from_its_familys_login(database_at_0012: str) -> None:
    engine = make_engine(database_at_0012)
    try:
        with engine.begin() as conn:
            # The users table as 0012 left it (the current one has columns added since).
            users_at_0012 = table("users", column("id"), column("phone"), column("nickname"), column("avatar_url"),
                                  column("roles"), column("created_at", UTCDateTime))
            conn.execute(insert(users_at_0012).values(phone=PHONE, nickname="员工", avatar_url="", roles="finance",
                                                      created_at=T0))
            user_id = conn.execute(select(users_at_0012.c.id)).scalar_one()
            for n, (family, hours, used, revoked) in enumerate([
                    ("a", 0, True, False), ("a", 5, True, False), ("a", 9, False, False),  # a's live token, 9 h in
                    ("b", 2, False, False),                                                 # b's login, unrefreshed
                    ("c", 1, True, True), ("c", 3, False, True)]):                          # c logged out
                conn.execute(insert(refresh_tokens).values(
                    user_id=user_id, family_id=family, token_hash=f"{n:064d}", created_at=T0 + timedelta(hours=hours),
                    expires_at=T0 + timedelta(days=30, hours=hours), roles="finance",
                    used_at=T0 + timedelta(hours=hours + 1) if used else None,
                    revoked_at=T0 + timedelta(hours=4) if revoked else None))

        migrations.upgrade(database_at_0012, migrations_dir("user"))

        assert [started for _, _, started in stored_sessions(engine)] == [
            None, None, T0, T0 + timedelta(hours=2), None, None]
    finally:
        engine.dispose()
