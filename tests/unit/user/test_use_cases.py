"""User use cases on the in-memory unit of work: what each commits and which events it publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.user_events_pb2 import UserRegistered

from services.common.errors import InvalidInput, RateLimited
from services.common.events import timestamp
from services.user import service
from services.user.tokens import TokenIssuer
from tests.fakes import FakeUserUnitOfWork

PHONE = "13912345678"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class RecordingSms:
    reveals_code = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        self.sent.append((phone, purpose))


def send(uow: FakeUserUnitOfWork, issuer: TokenIssuer, now: datetime = T0) -> str:
    return service.send_sms_code(uow, RecordingSms(), issuer, phone=PHONE, purpose="login", now=now).dev_code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_first_sms_login_registers_the_shopper_and_publishes_exactly_one_user_registered(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    code = send(uow, issuer)

    result = service.login_with_sms(uow, issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=30))

    assert (result.is_new_user, result.user.id, uow.users.count()) == (True, 1, 1)
    assert [(e.event_type, e.aggregate_id, e.payload) for e in uow.published] == [
        ("user-registered", "1", UserRegistered(user_id=1, channel="sms",
                                                registered_at=timestamp(T0 + timedelta(seconds=30))))]
    assert uow.commits == 2  # the code sent, then the login


def test_a_signup_code_logs_in_and_registers_as_a_login_code_does(uow: FakeUserUnitOfWork,
                                                                   issuer: TokenIssuer) -> None:
    code = service.send_sms_code(uow, RecordingSms(), issuer, phone=PHONE, purpose="signup", now=T0).dev_code

    result = service.login_with_sms(uow, issuer, phone=PHONE, code=code, now=T0 + timedelta(seconds=30))

    assert (result.is_new_user, result.user.id, [e.event_type for e in uow.published]) == (
        True, 1, ["user-registered"])


def test_a_signup_code_and_a_login_code_share_the_resend_wait(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    send(uow, issuer)

    with pytest.raises(RateLimited) as raised:
        service.send_sms_code(uow, RecordingSms(), issuer, phone=PHONE, purpose="signup", now=T0 + timedelta(seconds=5))

    assert raised.value.code == "SMS_RESEND_TOO_SOON"


def test_second_sms_login_publishes_nothing_more(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    service.login_with_sms(uow, issuer, phone=PHONE, code=send(uow, issuer), now=T0)
    later = T0 + timedelta(minutes=2)

    result = service.login_with_sms(uow, issuer, phone=PHONE, code=send(uow, issuer, later), now=later)

    assert (result.is_new_user, result.user.id, len(uow.published)) == (False, 1, 1)
    assert len(uow.refresh_tokens.tokens) == 2


def test_a_wrong_code_commits_the_attempt_and_publishes_nothing(uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    code = send(uow, issuer)

    with pytest.raises(InvalidInput) as raised:
        service.login_with_sms(uow, issuer, phone=PHONE, code=wrong(code), now=T0)

    assert raised.value.code == "SMS_CODE_INVALID"
    assert (uow.commits, uow.sms_codes.codes[0].attempts) == (2, 1)
    assert (uow.published, uow.users.count(), uow.refresh_tokens.tokens) == ([], 0, [])


def test_a_malformed_code_is_refused_before_the_unit_of_work_opens(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    send(uow, issuer)

    with pytest.raises(InvalidInput):
        service.login_with_sms(uow, issuer, phone=PHONE, code="12345", now=T0)

    assert (uow.commits, uow.sms_codes.codes[0].attempts) == (1, 0)


def test_a_code_asked_for_again_within_the_minute_is_neither_sent_nor_stored(
        uow: FakeUserUnitOfWork, issuer: TokenIssuer) -> None:
    sms = RecordingSms()
    service.send_sms_code(uow, sms, issuer, phone=PHONE, purpose="login", now=T0)

    with pytest.raises(RateLimited):
        service.send_sms_code(uow, sms, issuer, phone=PHONE, purpose="login", now=T0 + timedelta(seconds=59))

    assert (sms.sent, len(uow.sms_codes.codes), uow.commits) == ([(PHONE, "login")], 1, 1)
