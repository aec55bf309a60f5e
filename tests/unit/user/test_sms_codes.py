"""SMS verification codes: when one may be issued, and how redeeming it is limited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import DomainError, ErrorKind, InvalidInput, RateLimited
from services.user.domain import SMS_CODE_TTL, SMS_DAILY_LIMIT_PER_PHONE, SMS_MAX_ATTEMPTS, SMS_RESEND_AFTER, SmsCode

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PHONE = "13800138000"
RIGHT, WRONG = "hash-of-123456", "hash-of-654321"


def issue(now: datetime = T0, *, previous: SmsCode | None = None, sent_today: list[datetime] | None = None,
          purpose: str = "login") -> SmsCode:
    return SmsCode.issue(phone=PHONE, purpose=purpose, code_hash=RIGHT, now=now, previous=previous,
                         sent_today=sent_today or [])


@pytest.fixture
def code() -> SmsCode:
    """A login code issued at T0, not yet tried."""
    return issue()


def refusal(code: SmsCode, code_hash: str, now: datetime) -> tuple[ErrorKind, str]:
    with pytest.raises(DomainError) as raised:
        code.redeem(code_hash, now)
    return raised.value.kind, raised.value.code


# Issuing

def test_new_code_lives_five_minutes_and_is_untried() -> None:
    code = issue()

    assert (code.phone, code.purpose, code.code_hash, code.created_at, code.expires_at, code.attempts,
            code.consumed_at) == (PHONE, "login", RIGHT, T0, T0 + timedelta(minutes=5), 0, None)


@pytest.mark.parametrize("purpose", ["login", "reset", "bind", "unbind", "signup"])
def test_each_known_purpose_can_be_issued(purpose: str) -> None:
    assert issue(purpose=purpose).purpose == purpose


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        issue(purpose="payment")

    assert (raised.value.code, raised.value.message, raised.value.details) == (
        "SMS_PURPOSE_INVALID", "purpose must be one of login, reset, bind, unbind, signup", {"purpose": "invalid"})


def test_asking_again_within_a_minute_is_refused_with_the_seconds_left() -> None:
    previous = issue()

    with pytest.raises(RateLimited) as raised:
        issue(T0 + timedelta(seconds=20, milliseconds=500), previous=previous)

    assert (raised.value.code, raised.value.message, raised.value.details) == (
        "SMS_RESEND_TOO_SOON", "wait 40s before asking for another code", {"retry_after": 40})


def test_asking_again_a_moment_before_the_minute_is_up_says_wait_one_second() -> None:
    previous = issue()

    with pytest.raises(RateLimited) as raised:
        issue(T0 + SMS_RESEND_AFTER - timedelta(milliseconds=1), previous=previous)

    assert raised.value.details == {"retry_after": 1}


def test_retry_after_is_exact_when_the_time_left_is_whole_seconds() -> None:
    previous = issue()

    with pytest.raises(RateLimited) as raised:
        issue(T0 + timedelta(seconds=20), previous=previous)

    assert raised.value.details == {"retry_after": 40}


def test_asking_again_after_exactly_a_minute_is_allowed() -> None:
    previous = issue()

    code = issue(T0 + SMS_RESEND_AFTER, previous=previous)

    assert code.created_at == T0 + SMS_RESEND_AFTER


@given(elapsed_ms=st.integers(min_value=0, max_value=int(SMS_RESEND_AFTER.total_seconds() * 1000) - 1))
def test_waiting_the_advertised_retry_after_is_always_enough(elapsed_ms: int) -> None:
    previous = issue()
    asked_at = T0 + timedelta(milliseconds=elapsed_ms)
    with pytest.raises(RateLimited) as raised:
        issue(asked_at, previous=previous)

    retry_at = asked_at + timedelta(seconds=raised.value.details["retry_after"])

    assert issue(retry_at, previous=previous).created_at == retry_at


def test_tenth_code_of_the_day_is_still_sent() -> None:
    assert issue(sent_today=[T0 - timedelta(hours=1)] * (SMS_DAILY_LIMIT_PER_PHONE - 1)).attempts == 0


def test_eleventh_code_of_the_day_is_refused_until_enough_of_the_days_codes_are_a_day_old() -> None:
    # 11 codes in the last day: two must leave the window, the second of them sent 20 hours ago.
    sent = [T0 - timedelta(hours=22), T0 - timedelta(hours=20)] + [T0 - timedelta(hours=1)] * 9

    with pytest.raises(RateLimited) as raised:
        issue(sent_today=sent)

    assert (raised.value.code, raised.value.details) == ("SMS_DAILY_LIMIT", {"retry_after": 4 * 3600})


# Redeeming

def test_right_code_is_consumed_at_redeem_time(code: SmsCode) -> None:
    code.redeem(RIGHT, T0 + timedelta(minutes=1))

    assert (code.consumed_at, code.attempts) == (T0 + timedelta(minutes=1), 1)


def test_wrong_code_is_refused_and_counts_as_a_try(code: SmsCode) -> None:
    with pytest.raises(InvalidInput) as raised:
        code.redeem(WRONG, T0)

    assert (raised.value.code, raised.value.details, code.attempts, code.consumed_at) == (
        "SMS_CODE_INVALID", {"code": "wrong"}, 1, None)


def test_right_code_on_the_fifth_try_still_works(code: SmsCode) -> None:
    for _ in range(SMS_MAX_ATTEMPTS - 1):
        with pytest.raises(InvalidInput):
            code.redeem(WRONG, T0)

    code.redeem(RIGHT, T0)

    assert (code.consumed_at, code.attempts) == (T0, SMS_MAX_ATTEMPTS)


def test_code_is_locked_after_five_tries_even_for_the_right_code(code: SmsCode) -> None:
    for _ in range(SMS_MAX_ATTEMPTS):
        with pytest.raises(InvalidInput):
            code.redeem(WRONG, T0)

    assert (refusal(code, RIGHT, T0), code.attempts, code.consumed_at) == (
        (ErrorKind.INVALID, "SMS_CODE_LOCKED"), SMS_MAX_ATTEMPTS, None)


def test_code_is_expired_at_exactly_five_minutes(code: SmsCode) -> None:
    assert (refusal(code, RIGHT, T0 + SMS_CODE_TTL), code.attempts) == (
        (ErrorKind.INVALID, "SMS_CODE_EXPIRED"), 0)


def test_code_still_works_just_before_it_expires(code: SmsCode) -> None:
    code.redeem(RIGHT, T0 + SMS_CODE_TTL - timedelta(microseconds=1))

    assert code.consumed_at == T0 + SMS_CODE_TTL - timedelta(microseconds=1)


def test_second_redeem_of_a_used_code_is_refused(code: SmsCode) -> None:
    code.redeem(RIGHT, T0)

    assert (refusal(code, RIGHT, T0 + timedelta(seconds=1)), code.consumed_at, code.attempts) == (
        (ErrorKind.INVALID, "SMS_CODE_EXPIRED"), T0, 1)


# Properties over any sequence of tries

tries = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=400)), max_size=20)


@given(tries=tries)
def test_a_code_is_never_tried_more_than_the_maximum(tries: list[tuple[bool, int]]) -> None:
    code = issue()
    for right, seconds in sorted(tries, key=lambda t: t[1]):
        try:
            code.redeem(RIGHT if right else WRONG, T0 + timedelta(seconds=seconds))
        except DomainError:
            pass

    assert code.attempts <= SMS_MAX_ATTEMPTS


@given(tries=tries)
def test_a_code_succeeds_only_for_the_right_hash_within_five_tries_and_its_lifetime(
        tries: list[tuple[bool, int]]) -> None:
    code = issue()
    successes = []
    for right, seconds in sorted(tries, key=lambda t: t[1]):
        now = T0 + timedelta(seconds=seconds)
        tries_before, used_before = code.attempts, code.consumed_at is not None
        try:
            code.redeem(RIGHT if right else WRONG, now)
        except DomainError:
            continue
        successes.append((right, tries_before, used_before, now < code.expires_at))

    assert len(successes) <= 1
    assert all(right and tries_before < SMS_MAX_ATTEMPTS and not used_before and in_time
               for right, tries_before, used_before, in_time in successes)
