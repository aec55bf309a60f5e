"""Rate limits on the auth endpoints: per client IP and per phone, 429 with Retry-After."""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import grpc
import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.ratelimit import (
    Limit,
    MemoryCounter,
    RateLimiter,
    caller_values,
    client_address,
    client_values,
    make_rate_limiter,
)
from gateway.redisstore import RedisStore
from services.common.config import ConfigError
from tests.unit.gateway.conftest import PASSWORD_OWNER_PASSWORD

SMS = "/api/v1/auth/sms-codes"


def ask_code(client: FlaskClient, phone: str, ip: str = "203.0.113.7", **headers: str):  # type: ignore[no-untyped-def]
    return client.post(SMS, json={"phone": phone, "purpose": "login"}, environ_base={"REMOTE_ADDR": ip},
                       headers=headers)


def test_the_21st_code_request_from_one_ip_within_a_minute_is_refused(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    replies = [ask_code(client, f"139000000{n:02d}") for n in range(21)]

    assert [r.status_code for r in replies] == [202] * 20 + [429]
    assert replies[-1].json["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 60
    assert len(clients.user.SendSmsCode.calls) == 20  # the refused one never reached the service


def test_junk_in_the_phone_field_is_refused_before_any_phone_counter_exists(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    replies = [client.post(SMS, json={"phone": "x" * 1000 + str(n), "purpose": "login"}) for n in range(5)]

    assert {r.status_code for r in replies} == {400}
    assert not any(":phone/" in bucket for bucket in app.extensions["rate_limiter"].counter._buckets)


def test_a_phone_is_limited_per_address(client: FlaskClient) -> None:
    replies = [ask_code(client, "13900000001", ip="198.51.100.1") for _ in range(11)]

    assert [r.status_code for r in replies] == [202] * 10 + [429]
    assert ask_code(client, "13900000001", ip="198.51.100.2").status_code == 202


def test_a_strangers_burst_from_other_addresses_does_not_stop_the_owner_getting_a_code(
        client: FlaskClient, clients, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.user.SendSmsCode.error = rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "wait before asking again")
    burst = [ask_code(client, "13900000001", ip=f"198.51.100.{n // 10}") for n in range(40)]
    clients.user.SendSmsCode.error = None  # the resend interval has passed

    owner = ask_code(client, "13900000001", ip="203.0.113.7")

    assert {r.status_code for r in burst} == {429}
    assert len(clients.user.SendSmsCode.calls) == 41  # the service, which counts codes sent, saw every one
    assert owner.status_code == 202


def test_another_ip_is_not_held_back_by_a_busy_one(client: FlaskClient) -> None:
    for n in range(21):
        ask_code(client, f"139000000{n:02d}", ip="203.0.113.7")

    assert ask_code(client, "13911111111", ip="203.0.113.8").status_code == 202


def test_behind_a_trusted_proxy_the_forwarded_client_ip_is_limited(settings: GatewaySettings, clients) -> None:  # type: ignore[no-untyped-def]
    client = create_app(dataclasses.replace(settings, proxy_hops=1), clients).test_client()

    replies = [ask_code(client, f"139000000{n:02d}", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.9"})
               for n in range(20)]
    other = ask_code(client, "13911111111", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.10"})
    refused = ask_code(client, "13922222222", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.9"})

    assert {r.status_code for r in replies} == {202}
    assert (other.status_code, refused.status_code) == (202, 429)


def test_without_trusted_proxies_a_forged_forwarded_header_changes_nothing(client: FlaskClient) -> None:
    replies = [ask_code(client, f"139000000{n:02d}", **{"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(21)]

    assert replies[-1].status_code == 429


def test_the_wait_runs_to_the_end_of_the_window_and_then_counting_starts_afresh() -> None:
    limiter, limits = RateLimiter(MemoryCounter()), (Limit("ip", 2, 60),)

    waits = [limiter.check("e", limits, {"ip": "203.0.113.7"}, now=now) for now in (120.0, 130.0, 170.5, 180.0)]

    assert waits == [None, None, 10, None]


def test_checking_stops_at_the_first_limit_exceeded() -> None:
    counter = MemoryCounter()
    limiter = RateLimiter(counter)
    limits = (Limit("ip", 1, 60), Limit("phone", 100, 60))
    values = {"ip": "203.0.113.7", "phone": "13900000001"}

    limiter.check("e", limits, values, now=0.0)
    refused = limiter.check("e", limits, values, now=1.0)

    assert refused == 59
    assert sorted(len(events) for events, _ in counter._buckets.values()) == [1, 1]  # the refused one counted nowhere


def test_buckets_hold_no_phone_number_or_address() -> None:
    counter = MemoryCounter()

    RateLimiter(counter).check("auth.login_sms", (Limit("phone+ip", 5, 60),),
                               {"ip": "203.0.113.7", "phone": "13900000001"}, now=0.0)

    (bucket,) = counter._buckets
    assert bucket.startswith("auth.login_sms:phone+ip/60:")
    assert "13900000001" not in bucket and "203.0.113.7" not in bucket


def test_bucket_names_depend_on_the_key_so_a_store_reader_cannot_hash_phones_to_find_them() -> None:
    def bucket(key: bytes) -> str:
        counter = MemoryCounter()
        RateLimiter(counter, key=key).check("auth.login_sms", (Limit("phone", 5, 60),), {"phone": "13900000001"},
                                            now=0.0)
        return next(iter(counter._buckets))

    unkeyed = hashlib.sha256(b"13900000001").hexdigest()[:24]
    assert bucket(b"a" * 32) == bucket(b"a" * 32)  # replicas with one secret share buckets
    assert bucket(b"a" * 32) != bucket(b"b" * 32)
    assert not bucket(b"a" * 32).endswith(unkeyed)


@pytest.mark.parametrize("secret", [None, "too-short"])
def test_redis_counters_need_a_shared_secret(tmp_path, secret) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")
    environ = {"JWT_PUBLIC_KEY_FILE": str(key), "REDIS_URL": "redis://127.0.0.1:6379/0"}
    if secret:
        environ["GATEWAY_RATE_LIMIT_SECRET"] = secret

    with pytest.raises(ConfigError, match="GATEWAY_RATE_LIMIT_SECRET"):
        GatewaySettings.from_env(environ)


def test_scale_multiplies_every_limit() -> None:
    limiter = RateLimiter(MemoryCounter(), scale=3)

    waits = [limiter.check("e", (Limit("ip", 2, 60),), {"ip": "203.0.113.7"}, now=0.0) for _ in range(7)]

    assert waits == [None] * 6 + [60]


def test_the_memory_counter_forgets_finished_windows_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = MemoryCounter()
    monkeypatch.setattr(MemoryCounter, "MAX_BUCKETS", 3)
    for n in range(3):
        counter.take(f"old-{n}", 5, 60, now=0.0)

    counter.take("new", 5, 60, now=61.0)

    assert set(counter._buckets) == {"new"}


def test_a_full_memory_counter_evicts_the_bucket_used_longest_ago_and_keeps_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    counter = MemoryCounter()
    monkeypatch.setattr(MemoryCounter, "MAX_BUCKETS", 3)
    for name in ("a", "b", "c"):
        counter.take(name, 5, 60, now=0.0)
    counter.take("a", 5, 60, now=1.0)  # used again: "b" is now the one used longest ago

    counter.take("new", 5, 60, now=2.0)

    assert list(counter._buckets) == ["c", "a", "new"]


def test_a_full_memory_counter_still_enforces_the_limit_of_a_live_key(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = MemoryCounter()
    monkeypatch.setattr(MemoryCounter, "MAX_BUCKETS", 100)
    for _ in range(2):
        counter.take("hammered", 2, 60, now=0.0)

    results = []
    for n in range(500):  # a stream of new buckets past MAX_BUCKETS, the hammered key knocking between them
        counter.take(f"junk-{n}", 2, 60, now=1.0)
        results.append(counter.take("hammered", 2, 60, now=1.0))

    assert results == [60.0] * 500
    assert len(counter._buckets) <= 100


def test_a_spent_shop_wide_budget_stays_spent_whatever_flood_of_client_buckets_fills_the_memory_counter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryCounter, "MAX_BUCKETS", 100)
    limiter = RateLimiter(MemoryCounter(), key=b"k" * 32)
    budget = Limit("global", 3, 86_400)
    held = [limiter.hold("me.verify_identity", budget, {"global": "all"}, now=1000.0 + n)[0] for n in range(4)]

    for n in range(500):  # one catalogue read each from 500 IPv6 /64s
        limiter.check("catalog.list_products", (Limit("ip", 300, 60),), {"ip": f"2001:db8:0:{n:x}::/64"},
                      now=1020.0 + n / 100)

    assert held == [None, None, None, 86_400 - 3]  # room again a day after the first check
    assert limiter.hold("me.verify_identity", budget, {"global": "all"}, now=1040.0)[0] == 86_400 - 40


@pytest.mark.parametrize("values", [{}, {"ip": ""}])
def test_a_request_without_the_key_is_not_counted(values: dict[str, str]) -> None:
    counter = MemoryCounter()
    limiter = RateLimiter(counter)

    results = [limiter.check("e", (Limit("ip", 1, 60),), values) for _ in range(3)]

    assert results == [None, None, None]
    assert counter._buckets == {}


def test_a_per_user_limit_counts_signed_in_users_before_the_body_and_never_an_anonymous_or_service_caller() -> None:
    counter = MemoryCounter()
    limiter = RateLimiter(counter)
    per_user = (Limit("user", 1, 60),)

    anonymous = [limiter.check("e", per_user, caller_values(0)) for _ in range(3)]
    signed_in = [limiter.check("e", per_user, caller_values(42)) for _ in range(2)]

    assert (per_user[0].before_body, per_user[0].client_only, Limit("phone+user", 1, 60).before_body) == (
        True, False, False)
    assert (anonymous, signed_in[0], signed_in[1] is not None) == ([None] * 3, None, True)
    assert len(counter._buckets) == 1


def test_twenty_failed_password_logins_from_anywhere_close_the_account_to_new_addresses(password_login) -> None:  # type: ignore[no-untyped-def]
    guesses = [password_login(f"198.51.100.{n}").status_code for n in range(20)]
    next_guess = password_login("198.51.100.200")
    right_password_from_a_new_address = password_login("203.0.113.9", PASSWORD_OWNER_PASSWORD)

    assert guesses == [401] * 20
    assert (next_guess.status_code, next_guess.get_json()["error"]["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(next_guess.headers["Retry-After"]) <= 3600
    assert right_password_from_a_new_address.status_code == 429
    assert len(password_login.calls) == 20  # refused tries never reached the user service


def test_an_address_that_logged_in_before_is_not_locked_out_by_guessing_elsewhere(password_login) -> None:  # type: ignore[no-untyped-def]
    assert password_login("203.0.113.50", PASSWORD_OWNER_PASSWORD).status_code == 200
    for n in range(40):
        password_login(f"198.51.100.{n}")

    assert password_login("203.0.113.50", PASSWORD_OWNER_PASSWORD).status_code == 200


def test_successful_logins_do_not_count_as_failures(password_login) -> None:  # type: ignore[no-untyped-def]
    replies = [password_login(f"198.51.100.{n}", PASSWORD_OWNER_PASSWORD).status_code for n in range(25)]

    assert replies == [200] * 25


def test_one_address_gets_ten_login_tries_per_phone_in_five_minutes(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    clients.user.LoginWithSms.reply = user_pb2.LoginResponse(access_token="t", refresh_token="r", expires_in=900)
    replies = [client.post("/api/v1/auth/login/sms", json={"phone": "13800000001", "code": "000000"},
                           environ_base={"REMOTE_ADDR": "198.51.100.1"}) for _ in range(11)]

    assert [r.status_code for r in replies] == [200] * 10 + [429]


@pytest.mark.parametrize(("remote", "counted_as"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, ""),
])
def test_ipv6_clients_are_counted_by_their_slash_64(remote: str | None, counted_as: str) -> None:
    assert client_address(remote) == counted_as


def test_redis_counters_cannot_be_made_without_the_shared_secret() -> None:
    with pytest.raises(ValueError, match="shared secret"):
        make_rate_limiter(RedisStore.from_url("redis://127.0.0.1:6379/0"), 1.0, None)


@pytest.mark.parametrize(("remote", "site"), [
    ("2001:db8:7:ab::1", "2001:db8:7::/48"),
    ("2001:db8:7:ffff:1:2:3:4", "2001:db8:7::/48"),
    ("203.0.113.7", None),
    ("::ffff:203.0.113.7", None),
])
def test_ipv6_clients_are_also_counted_by_their_slash_48(remote: str, site: str | None) -> None:
    assert client_values(remote).get("ipv6_48") == site


def test_guesses_in_flight_at_once_get_no_further_than_the_failure_ceiling(app, clients, rpc_error) -> None:  # type: ignore[no-untyped-def]
    # Each guess from its own address (the per-address limits never bite); the user service answers none of them
    # until every guess has either reached it or been refused, as when a burst is sent at once.
    guesses, answered = 30, threading.Event()
    reached, refused = [], []
    settled = threading.Condition()

    def user_service(message):  # type: ignore[no-untyped-def]
        with settled:
            reached.append(message.password)
            settled.notify_all()
        assert answered.wait(30), "the test never let the user service answer"
        raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "phone or password is wrong")

    clients.user.LoginWithPassword.answer = user_service

    def guess(n: int) -> None:
        reply = app.test_client().post("/api/v1/auth/login/password",
                                       json={"phone": "13800000001", "password": f"guess-{n}"},
                                       environ_base={"REMOTE_ADDR": f"198.51.100.{n}"})
        if reply.status_code == 429:
            with settled:
                refused.append(n)
                settled.notify_all()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for thread in threads:
        thread.start()
    with settled:
        assert settled.wait_for(lambda: len(reached) + len(refused) == guesses, timeout=30), (reached, refused)
    answered.set()
    for thread in threads:
        thread.join()

    assert (len(reached), len(refused)) == (20, 10)


def test_a_try_the_user_service_did_not_answer_is_no_failure(password_login, clients, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.user.LoginWithPassword.error = rpc_error(grpc.StatusCode.UNAVAILABLE, "down")
    unanswered = [password_login(f"198.51.100.{n}").status_code for n in range(20)]
    clients.user.LoginWithPassword.error = None

    guesses = [password_login(f"198.51.100.{n}").status_code for n in range(20, 41)]

    assert (unanswered, guesses) == ([503] * 20, [401] * 20 + [429])


def test_behind_a_trusted_proxy_an_https_request_is_answered_with_hsts_and_a_plain_one_without(
        settings: GatewaySettings, clients) -> None:  # type: ignore[no-untyped-def]
    behind = create_app(dataclasses.replace(settings, proxy_hops=1), clients).test_client()
    direct = create_app(settings, clients).test_client()

    https = behind.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    plain = behind.get("/healthz", headers={"X-Forwarded-Proto": "http"})
    untrusted = direct.get("/healthz", headers={"X-Forwarded-Proto": "https"})  # no proxy trusted: a client's claim

    assert https.headers.get("Strict-Transport-Security") == "max-age=31536000"
    assert (plain.headers.get("Strict-Transport-Security"), untrusted.headers.get("Strict-Transport-Security")) == (
        None, None)


SITE_LOGINS = [  # (path, body): every route that logs in or proves a phone, each try a hash or a paid call upstream
    ("/api/v1/auth/login/password", {"phone": "13800000001", "password": "guess-123"}),
    ("/api/v1/auth/login/sms", {"phone": "13800000001", "code": "000000"}),
    ("/api/v1/auth/password/reset", {"phone": "13800000001", "code": "000000", "new_password": "New-pass-123"}),
    ("/api/v1/auth/login/wechat", {"code": "wx-code"}),
    ("/api/v1/me/phone", {"phone": "13800000001", "code": "000000", "wechat_code": "wx-code"}),
]


@pytest.mark.parametrize(("path", "body"), SITE_LOGINS)
def test_login_tries_from_many_slash_64s_of_one_ipv6_site_stop_at_the_sites_cap(  # type: ignore[no-untyped-def]
        settings: GatewaySettings, clients, bearer, path: str, body: dict[str, str]) -> None:
    client = create_app(dataclasses.replace(settings, rate_limit_scale=0.1), clients).test_client()  # /64: 3, /48: 15
    statuses = [client.post(path, json=body | ({"phone": f"1380000{n:02d}{k:02d}"} if "phone" in body else {}),
                            headers=bearer(), environ_base={"REMOTE_ADDR": f"2001:db8:0:{n:x}::1"}).status_code
                for n in range(10) for k in range(3)]  # a phone of its own each: only the address limits apply
    other_site = client.post(path, json=body, headers=bearer(), environ_base={"REMOTE_ADDR": "2001:db8:1::1"})

    assert (len(statuses) - statuses.count(429), other_site.status_code != 429) == (15, True)
