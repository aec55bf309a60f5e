"""Which phones logged in lately, in a fixed-size filter: this process's bitmaps (no Redis, or Redis down)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from gateway.knownphones import BITS, PERIOD_SECONDS, KnownPhones
from gateway.routes import auth
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.conftest import FrozenClock

START = 692 * PERIOD_SECONDS  # the first instant of a period


def test_a_phone_is_known_after_it_logged_in_and_not_before() -> None:
    phones = KnownPhones(b"k" * 32, clock=lambda: START)

    before = phones.known("13900000001")
    phones.remember("13900000001")

    assert (before, phones.known("13900000001"), phones.known("13900000002")) == (False, True, False)


def test_a_login_is_known_through_the_two_periods_after_its_own_and_not_in_the_third() -> None:
    now = [START + PERIOD_SECONDS - 1]  # the last second of its period
    phones = KnownPhones(b"k" * 32, clock=lambda: now[0])
    phones.remember("13900000001")

    seen = []
    for now[0] in (START + 3 * PERIOD_SECONDS - 1, START + 3 * PERIOD_SECONDS):
        seen.append(phones.known("13900000001"))

    assert seen == [True, False]  # 60 days and a second later still known; from the third period on, not


def test_ten_thousand_logins_take_no_per_phone_memory(app: Flask) -> None:
    with app.test_request_context():
        for n in range(10_000):
            auth._remember_login(f"139{n:08d}")

        assert len(app.extensions["rate_limiter"].counter._buckets) == 0  # no bucket per phone
        filter_memory = app.extensions["known_phones"].memory.periods
        assert [len(bits) for bits in filter_memory.values()] == [BITS // 8]  # 2 MiB, however many phones
        assert all(app.extensions["known_phones"].known(f"139{n:08d}") for n in range(10_000))


def test_an_old_periods_bitmap_is_dropped_when_a_new_one_is_made() -> None:
    now = [START]
    phones = KnownPhones(b"k" * 32, clock=lambda: now[0])
    for period in range(5):
        now[0] = START + period * PERIOD_SECONDS
        phones.remember("13900000001")

    assert sorted(phones.memory.periods) == [694, 695, 696]


def ask(client: FlaskClient, phone: str, ip: str) -> int:
    return client.post("/api/v1/auth/sms-codes", json={"phone": phone, "purpose": "login"},
                       environ_base={"REMOTE_ADDR": ip}).status_code


def test_codes_to_phones_that_logged_in_lately_stop_at_2000_a_day_from_one_address_apart_from_new_phones(
        app: Flask, client: FlaskClient, clients: FakeServices, frozen_clock: FrozenClock) -> None:
    phones = [f"139{n:08d}" for n in range(2001)]
    with app.test_request_context():
        for phone in phones:
            auth._remember_login(phone)
    start, replies = frozen_clock.now, []
    for n, phone in enumerate(phones):
        frozen_clock.now = start + 60 * (n // 20)  # 20 a minute, the per-minute limit
        replies.append(ask(client, phone, "198.51.100.9"))
    frozen_clock.now += 60

    new_phone = ask(client, "13800000001", "198.51.100.9")
    other_address = ask(client, phones[-1], "198.51.100.10")

    assert replies == [202] * 2000 + [429]
    assert (new_phone, other_address) == (202, 202)
    assert len(clients.user.SendSmsCode.calls) == 2002
