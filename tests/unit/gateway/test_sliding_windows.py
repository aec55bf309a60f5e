"""Every rate limit holds in any window of its length, not only in windows cut at fixed instants; an address's
trust for an account lasts 30 days from its latest login there."""

from __future__ import annotations

from gateway.ratelimit import Limit, MemoryCounter, RateLimiter
from tests.unit.gateway.conftest import PASSWORD_OWNER_PASSWORD, FrozenClock

HOUR, DAY = 3600, 86400
OWNER_DESK = "203.0.113.50"


def test_a_limit_holds_across_the_instant_a_fixed_window_would_start_afresh() -> None:
    limiter, limits = RateLimiter(MemoryCounter()), (Limit("ip", 2, 60),)

    waits = [limiter.check("e", limits, {"ip": "203.0.113.7"}, now=now) for now in (58.0, 59.0, 61.0, 118.0, 119.0)]

    assert waits == [None, None, 57, None, None]  # at 61, two came in the last 60 s; at 118 the first is 60 s old


def test_a_refused_request_is_not_counted_so_a_client_that_keeps_knocking_still_gets_its_share() -> None:
    limiter, limits = RateLimiter(MemoryCounter()), (Limit("ip", 1, 60),)

    waits = [limiter.check("e", limits, {"ip": "203.0.113.7"}, now=float(now)) for now in range(0, 121, 10)]

    assert waits == [None, 50, 40, 30, 20, 10, None, 50, 40, 30, 20, 10, None]


def test_twenty_failures_just_before_an_hour_boundary_still_lock_new_addresses_just_after_it(
        password_login, frozen_clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    boundary = (frozen_clock.now // HOUR + 1) * HOUR
    frozen_clock.now = boundary - 60
    guesses = [password_login(f"198.51.100.{n}").status_code for n in range(20)]
    frozen_clock.now = boundary + 60

    after_the_boundary = password_login("198.51.100.200")

    assert guesses == [401] * 20
    assert (after_the_boundary.status_code, after_the_boundary.headers.get("Retry-After")) == (429, "3480")
    assert len(password_login.calls) == 20


def test_once_the_oldest_failure_is_an_hour_old_one_more_try_is_let_through(
        password_login, frozen_clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    start = frozen_clock.now
    for n in range(20):
        frozen_clock.now = start + 60 * n  # a guess a minute
        password_login(f"198.51.100.{n}")
    frozen_clock.now = start + HOUR

    replies = [password_login("198.51.100.100").status_code, password_login("198.51.100.101")]

    assert replies[0] == 401
    assert (replies[1].status_code, replies[1].headers.get("Retry-After")) == (429, "60")  # the second-oldest's hour


def test_an_owner_who_logged_in_a_minute_before_a_30_day_boundary_is_still_trusted_after_it(
        password_login, frozen_clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    boundary = (frozen_clock.now // (30 * DAY) + 1) * (30 * DAY)
    frozen_clock.now = boundary - 60
    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 200
    frozen_clock.now = boundary + 60
    guesses = [password_login(f"198.51.100.{n}").status_code for n in range(20)]

    owner = password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD)

    assert guesses == [401] * 20
    assert owner.status_code == 200


def test_each_login_renews_the_addresss_trust_for_30_days(password_login, frozen_clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    first_login = frozen_clock.now
    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 200
    frozen_clock.now = first_login + 20 * DAY
    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 200
    frozen_clock.now = first_login + 45 * DAY  # 45 days after the first login, 25 after the latest
    for n in range(20):
        password_login(f"198.51.100.{n}")

    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 200


def test_thirty_days_after_its_latest_login_an_address_is_a_stranger_again(
        password_login, frozen_clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    last_login = frozen_clock.now
    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 200
    frozen_clock.now = last_login + 30 * DAY
    for n in range(20):
        password_login(f"198.51.100.{n}")

    assert password_login(OWNER_DESK, PASSWORD_OWNER_PASSWORD).status_code == 429


def test_trust_is_one_login_whatever_the_rate_limit_scale() -> None:
    limiter, trusted = RateLimiter(MemoryCounter(), scale=10), Limit("phone+ip", 1, 30 * DAY)
    values = {"phone": "13800000001", "ip": OWNER_DESK}

    before = limiter.happened("e", trusted, values, now=0.0)
    limiter.count("e", trusted, values, now=0.0)

    assert (before, limiter.happened("e", trusted, values, now=1.0)) == (False, True)
