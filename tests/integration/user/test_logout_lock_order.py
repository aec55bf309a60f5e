"""A logout racing a logout everywhere of the same user (PostgreSQL): both take the user's lock, then the tokens'."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import pytest
from sqlalchemy import Engine

from services.user import service
from services.user.db import SqlUserUnitOfWork
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import pause
from tests.fixtures.postgres import start_thread, wait_until_blocked

pytestmark = pytest.mark.integration

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class PausedOnceTokenLocked(SqlUserUnitOfWork):
    """A unit of work that stops right after it has locked a refresh token (by_hash with lock), its writes not yet
    made, until `go` is set; `paused` is set once it stops."""

    def __init__(self, engine: Engine, paused: threading.Event, go: threading.Event) -> None:
        super().__init__(engine, "user")
        self.wait = pause(paused, go)

    def __enter__(self) -> Self:
        super().__enter__()
        by_hash = self.refresh_tokens.by_hash

        def locked_then_wait(token_hash: str, *, lock: bool = True) -> Any:
            token = by_hash(token_hash, lock=lock)
            if lock:
                self.wait()
            return token

        self.refresh_tokens.by_hash = locked_then_wait  # type: ignore[method-assign]
        return self


def test_a_logout_racing_a_logout_everywhere_waits_for_it_instead_of_deadlocking(
        pg_engine: Engine, pg_uow: Callable[[], SqlUserUnitOfWork], issuer: TokenIssuer) -> None:
    code = service.send_sms_code(pg_uow(), ConsoleSms(), issuer, phone=PHONE, purpose="login", now=T0).dev_code
    login = service.login_with_sms(pg_uow(), issuer, phone=PHONE, code=code, now=T0)
    # A rotated token stays in the family: both ends revoke it, and the logout everywhere reaches it first.
    refreshed = service.refresh_session(pg_uow(), issuer, refresh_token=login.refresh_token,
                                        now=T0 + timedelta(minutes=1))
    paused, go = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    logging_out = start_thread(results, "logout", lambda: service.logout(
        PausedOnceTokenLocked(pg_engine, paused, go), issuer, refresh_token=refreshed.refresh_token,
        now=T0 + timedelta(minutes=2)))
    assert paused.wait(30), "the logout never locked its refresh token"
    everywhere = start_thread(results, "everywhere", lambda: service.logout_all(
        pg_uow(), issuer, user_id=login.user.id or 0, now=T0 + timedelta(minutes=2)))
    wait_until_blocked(pg_engine, everywhere)
    go.set()
    logging_out.join()
    everywhere.join()

    assert results == {"logout": 1, "everywhere": 0}
