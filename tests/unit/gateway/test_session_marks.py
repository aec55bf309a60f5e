"""Ended sessions at the gateway: the marks in process memory, and the check every authenticated request passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from gateway.config import GatewaySettings
from gateway.sessions import MemorySessionMarks, SessionMarksUnavailable
from services.common.auth import Caller
from services.common.config import ConfigError
from services.common.sessions import SessionsEnded
from tests.unit.gateway.test_order_routes import an_order_with_refunds

T = 1_795_680_000.0


def caller(user_id: int = 42, issued_at: float = T - 1, session_id: str = "s-1") -> Caller:
    return Caller(user_id=user_id, roles=frozenset(), token_id="j", issued_at=issued_at, session_id=session_id)


@pytest.fixture
def now() -> list[float]:
    return [T]


@pytest.fixture
def marks(now: list[float]) -> MemorySessionMarks:
    return MemorySessionMarks(leeway_seconds=10, clock=lambda: now[0])


def test_a_users_mark_ends_their_tokens_issued_before_it_and_no_later_one(marks: MemorySessionMarks) -> None:
    marks.record(SessionsEnded(user_id=42, before=T, until=T + 900))

    assert [marks.ended(caller(issued_at=at)) for at in (T - 600, T - 0.000001, T, T + 0.000001)] == [
        True, True, False, False]


def test_a_sessions_mark_ends_that_session_only(marks: MemorySessionMarks) -> None:
    marks.record(SessionsEnded(user_id=42, session_id="s-1", until=T + 900))

    assert [marks.ended(caller(session_id=sid)) for sid in ("s-1", "s-2", "")] == [True, False, False]


def test_other_users_are_not_touched(marks: MemorySessionMarks) -> None:
    marks.record(SessionsEnded(user_id=42, before=T, until=T + 900))

    assert marks.ended(caller(user_id=43)) is False


def test_a_mark_is_forgotten_once_its_tokens_have_expired_and_the_leeway_passed(marks: MemorySessionMarks,
                                                                               now: list[float]) -> None:
    marks.record(SessionsEnded(user_id=42, before=T, until=T + 900))
    marks.record(SessionsEnded(user_id=42, session_id="s-1", until=T + 900))

    now[0] = T + 909.9
    still = marks.ended(caller(session_id="")), marks.ended(caller(issued_at=T + 5))
    now[0] = T + 910.1
    marks.record(SessionsEnded(user_id=7, before=now[0], until=now[0] + 900))  # a write prunes the expired

    assert (still, marks.ended(caller()), len(marks._users), len(marks._sessions)) == ((True, True), False, 1, 0)


def test_a_notice_arriving_late_does_not_move_a_users_mark_back(marks: MemorySessionMarks) -> None:
    marks.record(SessionsEnded(user_id=42, before=T, until=T + 900))
    marks.record(SessionsEnded(user_id=42, before=T - 30, until=T + 870))

    assert marks.ended(caller(issued_at=T - 10)) is True


def test_a_notice_already_past_is_not_kept(marks: MemorySessionMarks) -> None:
    marks.record(SessionsEnded(user_id=42, before=T - 1000, until=T - 100))

    assert (marks._users, marks.ended(caller(issued_at=T - 2000))) == ({}, False)


# The check in the app (gateway/app.py), with the fake user service.

@pytest.fixture
def profile(clients) -> None:
    clients.user.GetProfile.reply = user_pb2.Profile(id=42, phone_masked="139****5678", gender="unknown")
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(total=0)


def end_sessions_of(app: Flask, user_id: int, *, before: float | None = None, session_id: str = "") -> None:
    before = time.time() - 0.5 if before is None and not session_id else before or 0.0
    app.extensions["session_marks"].record(SessionsEnded(user_id=user_id, before=before, session_id=session_id,
                                                         until=time.time() + 900))


def error(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


@pytest.mark.usefixtures("profile")
def test_a_token_of_ended_sessions_is_401_though_it_was_verified_and_cached_before(
        app: Flask, client: FlaskClient, mint: Callable[..., str]) -> None:
    token = {"Authorization": f"Bearer {mint(user_id=42, issued_ago=timedelta(seconds=1))}"}
    before = client.get("/api/v1/me", headers=token).status_code

    end_sessions_of(app, 42)

    assert (before, error(client.get("/api/v1/me", headers=token))) == (200, (401, "SESSION_ENDED"))


@pytest.mark.usefixtures("profile")
def test_a_token_issued_after_the_end_and_other_users_tokens_still_work(
        app: Flask, client: FlaskClient, mint: Callable[..., str]) -> None:
    end_sessions_of(app, 42)

    fresh = client.get("/api/v1/me", headers={"Authorization": f"Bearer {mint(user_id=42)}"})
    other = client.get("/api/v1/me", headers={"Authorization": f"Bearer {mint(user_id=43, issued_ago=timedelta(seconds=1))}"})

    assert (fresh.status_code, other.status_code) == (200, 200)


@pytest.mark.usefixtures("profile")
def test_a_staff_token_of_ended_sessions_is_401_on_admin_routes(app: Flask, client: FlaskClient,
                                                                mint: Callable[..., str]) -> None:
    token = {"Authorization": f"Bearer {mint(user_id=7, roles='admin', issued_ago=timedelta(seconds=1))}"}

    end_sessions_of(app, 7)

    assert error(client.post("/api/v1/admin/users/search", json={"phone": "13900000001"}, headers=token)) == (
        401, "SESSION_ENDED")


@pytest.mark.usefixtures("profile")
def test_unknown_ended_sessions_refuse_staff_routes_and_let_shopper_routes_through(
        app: Flask, client: FlaskClient, mint: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(_: Caller) -> bool:
        raise SessionMarksUnavailable
    monkeypatch.setattr(app.extensions["session_marks"], "ended", unavailable)

    staff = client.post("/api/v1/admin/users/search", json={"phone": "13900000001"},
                        headers={"Authorization": f"Bearer {mint(user_id=7, roles='admin')}"})
    shopper = client.get("/api/v1/me", headers={"Authorization": f"Bearer {mint(user_id=42)}"})

    assert (error(staff), shopper.status_code) == ((503, "SESSION_CHECK_UNAVAILABLE"), 200)


@pytest.mark.usefixtures("profile")
def test_unknown_ended_sessions_refuse_a_staff_token_on_shopper_routes_too(
        app: Flask, client: FlaskClient, clients, mint: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    clients.order.GetOrder.reply = an_order_with_refunds()  # the order service shows staff anyone's order
    def unavailable(_: Caller) -> bool:
        raise SessionMarksUnavailable
    monkeypatch.setattr(app.extensions["session_marks"], "ended", unavailable)
    staff = {"Authorization": f"Bearer {mint(user_id=7, roles='customer_service')}"}

    replies = [client.get(path, headers=staff) for path in ("/api/v1/admin/orders/7", "/api/v1/orders/7", "/api/v1/me")]

    assert [(reply.status_code, reply.get_json().get("error", {}).get("code")) for reply in replies] == [
        (503, "SESSION_CHECK_UNAVAILABLE")] * 3



def settings_from(tmp_path, **environ: str) -> GatewaySettings:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")
    return GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(key), **environ})


def test_more_than_one_worker_without_redis_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="GATEWAY_WORKERS above 1 needs REDIS_URL"):
        settings_from(tmp_path, GATEWAY_WORKERS="2")


@pytest.mark.parametrize("environ", [{"GATEWAY_WORKERS": "1"}, {
    "GATEWAY_WORKERS": "2", "REDIS_URL": "redis://127.0.0.1:6379/0", "GATEWAY_RATE_LIMIT_SECRET": "s" * 32}])
def test_one_worker_or_workers_sharing_redis_start(tmp_path, environ: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    assert settings_from(tmp_path, **environ).jwt_public_key_pem == b"k"
