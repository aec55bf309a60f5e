"""Ended sessions end their access tokens at once, through the whole stack: two gateway replicas sharing one Redis, a
real user gRPC server on PostgreSQL. What one replica passes on (a logout, a password reset, roles taken away) is
refused by the other at the next request, though its token was verified (and cached) before."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, registration
from services.user import service
from services.user.db import SqlUserUnitOfWork, start_mappers
from services.user.domain import User
from services.user.grpc_api import UserServicer
from services.user.identity import FormatOnlyIdentityChecker, IdentityKeys, IdentityVault
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords, FakeWechat
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
API = "/api/v1"
ADMIN_PHONE, STAFF_PHONE = "13700000001", "13700000002"
SHOPPERS = [f"139000000{n:02d}" for n in range(1, 7)]  # with a password, to log in as often as a test needs
PASSWORD = "staffpass1"
WECHAT = FakeWechat()  # the user service's WeChat: WECHAT.code_for(openid) is a wx.login code


@pytest.fixture
def replicas(pg_engine: Engine, jwt_keys: JwtKeys, issuer: TokenIssuer) -> Iterator[tuple[FlaskClient, FlaskClient]]:
    """Two gateway apps on one Redis (its session marks emptied first), their user service a real gRPC server."""
    store = redis.Redis.from_url(REDIS_URL)
    for key in store.scan_iter("mall:sessions:*"):  # user ids restart with every emptied database
        store.delete(key)
    start_mappers()
    uow = functools.partial(SqlUserUnitOfWork, pg_engine, "user")
    for phone, role in ((ADMIN_PHONE, "admin"), (STAFF_PHONE, "admin")):
        service.create_staff(uow(), FakePasswords(), phone=phone, role=role, password=PASSWORD)
    with uow() as tx:
        for phone in SHOPPERS:
            tx.users.add(User(phone=phone, created_at=datetime.now(UTC), password_hash=FakePasswords().hash(PASSWORD)))
        tx.commit()
    servicer = UserServicer(uow, ConsoleSms(), issuer, FakePasswords(), FormatOnlyIdentityChecker(),
                            IdentityVault(IdentityKeys.derived_for_dev(b"test")), WECHAT)
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                 "USER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(user_pb2, user_pb2_grpc, "UserService", servicer)])
    server.start()
    apps = [create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                       grpc_timeout_seconds=5, log_level="INFO", redis_url=REDIS_URL,
                                       rate_limit_secret="s" * 32, rate_limit_scale=1000,
                                       environ={"USER_GRPC_TARGET": f"127.0.0.1:{port}"})) for _ in range(2)]
    yield apps[0].test_client(), apps[1].test_client()
    for app in apps:
        app.extensions["clients"].close()
    server.stop(grace=None)
    store.close()


def login(gateway: FlaskClient, phone: str) -> dict[str, Any]:
    """A new session (a password login), its answer: tokens and user."""
    login = gateway.post(f"{API}/auth/login/password", json={"phone": phone, "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    return login.get_json()


def bearer(login: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {login['access_token']}"}


def answer(response: Any) -> tuple[int, str]:
    return response.status_code, (response.get_json().get("error") or {}).get("code", "")


def find_users(gateway: FlaskClient, login: dict[str, Any]) -> tuple[int, str]:
    return answer(gateway.post(f"{API}/admin/users/search", json={"phone": STAFF_PHONE}, headers=bearer(login)))


def test_after_a_logout_on_one_replica_its_access_token_is_refused_by_both_at_once(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    laptop = login(a, SHOPPERS[0])
    tablet = login(a, SHOPPERS[0])  # the same account's other session
    other = login(a, SHOPPERS[1])
    verified = [gateway.get(f"{API}/me", headers=bearer(laptop)).status_code for gateway in (a, b)]

    logged_out = a.post(f"{API}/auth/logout", json={"refresh_token": laptop["refresh_token"]})
    again = login(b, SHOPPERS[0])  # within the same second as the logout

    assert (verified, logged_out.status_code) == ([200, 200], 200)
    assert [answer(gateway.get(f"{API}/me", headers=bearer(laptop))) for gateway in (a, b)] == [
        (401, "SESSION_ENDED")] * 2
    assert [gateway.get(f"{API}/me", headers=bearer(session)).status_code
            for gateway in (a, b) for session in (tablet, again, other)] == [200] * 6


def test_logout_everywhere_refuses_every_older_token_of_the_account_and_no_newer_one(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    first, second = login(a, SHOPPERS[2]), login(b, SHOPPERS[2])

    a.post(f"{API}/auth/logout-all", headers=bearer(second))
    after = login(a, SHOPPERS[2])

    assert [answer(b.get(f"{API}/me", headers=bearer(session))) for session in (first, second, after)] == [
        (401, "SESSION_ENDED"), (401, "SESSION_ENDED"), (200, "")]


def test_a_password_reset_refuses_the_old_access_token_at_once(replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    phone = SHOPPERS[3]
    old = login(a, phone)
    assert b.get(f"{API}/me", headers=bearer(old)).status_code == 200
    code = a.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "reset"}).get_json()["dev_code"]

    reset = a.post(f"{API}/auth/password/reset", json={"phone": phone, "code": code, "new_password": "newpass99"})
    new = a.post(f"{API}/auth/login/password", json={"phone": phone, "password": "newpass99"}).get_json()

    assert (reset.status_code, answer(b.get(f"{API}/me", headers=bearer(old)))) == (200, (401, "SESSION_ENDED"))
    assert b.get(f"{API}/me", headers=bearer(new)).status_code == 200


def test_an_admin_whose_roles_are_taken_away_is_refused_on_admin_routes_at_once(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    admin, fired = login(a, ADMIN_PHONE), login(a, STAFF_PHONE)
    before = find_users(b, fired)

    taken = a.put(f"{API}/admin/users/{fired['user']['id']}/roles", json={"roles": []}, headers=bearer(admin))
    refreshed = b.post(f"{API}/auth/refresh", json={"refresh_token": fired["refresh_token"]}).get_json()

    assert (before, taken.status_code) == ((200, ""), 200)
    assert find_users(b, fired) == (401, "SESSION_ENDED")
    assert (refreshed["user"]["roles"], find_users(b, refreshed)) == ([], (403, "FORBIDDEN"))  # a shopper now
    assert find_users(b, admin) == (200, "")


def test_an_admin_setting_a_staff_password_refuses_their_old_token_at_once(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    admin, staff = login(a, ADMIN_PHONE), login(a, STAFF_PHONE)

    a.post(f"{API}/admin/users/{staff['user']['id']}/password", json={"new_password": "newpass99"},
           headers=bearer(admin))

    assert (find_users(b, staff), find_users(b, admin)) == ((401, "SESSION_ENDED"), (200, ""))


def sms_code(gateway: FlaskClient, phone: str, purpose: str) -> str:
    sent = gateway.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": purpose})
    assert sent.status_code == 202, sent.get_json()
    return sent.get_json()["dev_code"]


def test_unbinding_the_wechat_refuses_the_access_tokens_of_the_sessions_it_started_and_not_the_owners(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    phone = SHOPPERS[5]
    owner = login(a, phone)
    bound = a.post(f"{API}/me/wechat", json={"code": WECHAT.code_for("o-shared"), "sms_code": sms_code(a, phone, "bind")},
                   headers=bearer(owner))
    by_wechat = a.post(f"{API}/auth/login/wechat", json={"code": WECHAT.code_for("o-shared")}).get_json()
    assert (bound.status_code, by_wechat["user"]["id"], b.get(f"{API}/me", headers=bearer(by_wechat)).status_code) == (
        200, owner["user"]["id"], 200)

    unbound = a.delete(f"{API}/me/wechat", json={"sms_code": sms_code(a, phone, "unbind")}, headers=bearer(owner))

    assert (unbound.status_code, unbound.get_json()) == (200, {"wechat_bound": False})
    assert [answer(gateway.get(f"{API}/me", headers=bearer(by_wechat))) for gateway in (a, b)] == [
        (401, "SESSION_ENDED")] * 2
    assert answer(b.post(f"{API}/auth/refresh", json={"refresh_token": by_wechat["refresh_token"]}))[0] == 401
    assert [answer(gateway.get(f"{API}/me", headers=bearer(owner))) for gateway in (a, b)] == [(200, "")] * 2


def test_a_spent_refresh_token_presented_again_refuses_its_sessions_access_tokens(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = replicas
    first = login(a, SHOPPERS[4])
    rotated = a.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    # Its successor used: no retry nor parallel refresh of the client's, within the grace window or not.
    moved_on = a.post(f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).get_json()

    replayed = b.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert answer(replayed) == (401, "REFRESH_TOKEN_REUSED")
    assert [answer(a.get(f"{API}/me", headers=bearer(token))) for token in (first, rotated, moved_on)] == [
        (401, "SESSION_ENDED")] * 3


def test_two_refreshes_at_once_with_one_token_both_give_working_pairs(
        replicas: tuple[FlaskClient, FlaskClient]) -> None:
    first = login(replicas[0], SHOPPERS[5])
    barrier = threading.Barrier(2)
    answers: dict[int, Any] = {}

    def refresh(replica: int) -> None:
        barrier.wait()
        answers[replica] = replicas[replica].post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})

    threads = [threading.Thread(target=refresh, args=(replica,)) for replica in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer(answers[replica]) for replica in (0, 1)] == [(200, "")] * 2
    pairs = [answers[replica].get_json() for replica in (0, 1)]
    assert [answer(gateway.get(f"{API}/me", headers=bearer(pair))) for pair in pairs for gateway in replicas] == [
        (200, "")] * 4
    assert [answer(replicas[0].post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
            for pair in pairs] == [(200, "")] * 2
