"""AliyunSms against the simulator: signed SendSms, the delivered code, flow control, every refusal."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from services.common.errors import DomainError, ErrorKind, InvalidInput, RateLimited
from services.user.sms import AliyunSms, rpc_signature
from tests.fixtures.simulator import RunningSimulator


def new_phone() -> str:
    return f"139{secrets.randbelow(10**8):08d}"


@pytest.fixture
def sms(simulator: RunningSimulator) -> AliyunSms:
    return AliyunSms(simulator.aliyun_sms_settings())


def post_raw(simulator: RunningSimulator, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = requests.post(simulator.aliyun_sms_settings().endpoint, data=params, timeout=5)
    return response.status_code, response.json()


def test_a_sent_code_is_delivered_to_the_phone(simulator: RunningSimulator, sms: AliyunSms) -> None:
    phone = new_phone()

    sms.send_code(phone, "493817", "login")

    [message] = simulator.client.sms_messages(phone)
    assert (message["code"], message["sign_name"], message["template_code"], message["template_param"]) == (
        "493817", "MiniMall", "SMS_000000001", {"code": "493817"})


def test_the_last_code_sent_is_listed_first(simulator: RunningSimulator, sms: AliyunSms) -> None:
    phone = new_phone()
    sms.send_code(phone, "111111", "login")
    simulator.client.advance_clock(60)
    sms.send_code(phone, "222222", "reset")

    assert [m["code"] for m in simulator.client.sms_messages(phone)] == ["222222", "111111"]
    assert simulator.client.last_sms_code(phone) == "222222"


def test_the_simulator_answers_a_good_request_in_aliyuns_shape(simulator: RunningSimulator,
                                                               sms: AliyunSms) -> None:
    status, answer = post_raw(simulator, sms.signed_params(new_phone(), "123456"))

    assert (status, sorted(answer), answer["Code"], answer["Message"]) == (
        200, ["BizId", "Code", "Message", "RequestId"], "OK", "OK")


def test_a_second_code_within_a_minute_hits_flow_control(simulator: RunningSimulator, sms: AliyunSms) -> None:
    phone = new_phone()
    sms.send_code(phone, "111111", "login")

    with pytest.raises(RateLimited) as refused:
        sms.send_code(phone, "222222", "login")

    assert refused.value.code == "SMS_RATE_LIMITED"
    assert [m["code"] for m in simulator.client.sms_messages(phone)] == ["111111"]


def test_the_sixth_code_within_an_hour_hits_flow_control(simulator: RunningSimulator, sms: AliyunSms) -> None:
    phone = new_phone()
    for code in range(5):
        sms.send_code(phone, f"00000{code}", "login")
        simulator.client.advance_clock(60)

    with pytest.raises(RateLimited):
        sms.send_code(phone, "000005", "login")

    assert len(simulator.client.sms_messages(phone)) == 5


def test_a_number_that_is_not_a_mainland_mobile_is_refused(simulator: RunningSimulator, sms: AliyunSms) -> None:
    with pytest.raises(InvalidInput) as refused:
        sms.send_code("12345678901", "123456", "login")

    assert refused.value.code == "PHONE_INVALID"
    assert simulator.client.sms_messages("12345678901") == []


@pytest.mark.parametrize(("code", "error", "domain_code", "kind"), [
    ("isv.BUSINESS_LIMIT_CONTROL", RateLimited, "SMS_RATE_LIMITED", ErrorKind.RATE_LIMITED),
    ("isv.DAY_LIMIT_CONTROL", RateLimited, "SMS_RATE_LIMITED", ErrorKind.RATE_LIMITED),
    ("isv.MOBILE_NUMBER_ILLEGAL", InvalidInput, "PHONE_INVALID", ErrorKind.INVALID),
    ("isv.AMOUNT_NOT_ENOUGH", DomainError, "SMS_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    ("isv.SMS_TEMPLATE_ILLEGAL", DomainError, "SMS_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    ("isp.SYSTEM_ERROR", DomainError, "SMS_UNAVAILABLE", ErrorKind.UNAVAILABLE),
])
def test_each_forced_business_error_becomes_its_domain_error(simulator: RunningSimulator, sms: AliyunSms, code: str,
                                                             error: type[DomainError], domain_code: str,
                                                             kind: ErrorKind) -> None:
    phone = new_phone()
    simulator.client.sms_fail_next(code)

    with pytest.raises(error) as refused:
        sms.send_code(phone, "123456", "login")

    assert (refused.value.code, refused.value.kind) == (domain_code, kind)
    assert simulator.client.sms_messages(phone) == []


def test_a_tampered_parameter_fails_signature_verification(simulator: RunningSimulator, sms: AliyunSms) -> None:
    phone = new_phone()
    params = {**sms.signed_params(phone, "123456"), "TemplateParam": '{"code": "999999"}'}

    status, answer = post_raw(simulator, params)

    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    assert simulator.client.sms_messages(phone) == []


def test_a_request_signed_for_get_but_sent_by_post_fails_verification(simulator: RunningSimulator,
                                                                      sms: AliyunSms) -> None:
    params = sms.signed_params(new_phone(), "123456")
    params["Signature"] = rpc_signature("GET", params, simulator.config.aliyun_access_key_secret)

    status, answer = post_raw(simulator, params)

    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")


def test_a_wrong_access_key_secret_is_refused_and_the_adapter_reports_unavailable(
        simulator: RunningSimulator, caplog: pytest.LogCaptureFixture) -> None:
    sms = AliyunSms(replace(simulator.aliyun_sms_settings(), access_key_secret="not-the-secret"))
    status, answer = post_raw(simulator, sms.signed_params(new_phone(), "123456"))

    with caplog.at_level(logging.ERROR, logger="services.user.sms"), pytest.raises(DomainError) as refused:
        sms.send_code(new_phone(), "123456", "login")

    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    assert (refused.value.code, refused.value.kind) == ("SMS_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert "SignatureDoesNotMatch" in caplog.text and "not-the-secret" not in caplog.text


def test_an_unknown_access_key_id_is_refused_with_404(simulator: RunningSimulator) -> None:
    sms = AliyunSms(replace(simulator.aliyun_sms_settings(), access_key_id="LTAIunknown"))

    status, answer = post_raw(simulator, sms.signed_params(new_phone(), "123456"))

    assert (status, answer["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    with pytest.raises(DomainError) as refused:
        sms.send_code(new_phone(), "123456", "login")
    assert refused.value.code == "SMS_UNAVAILABLE"


def test_a_reused_signature_nonce_is_refused(simulator: RunningSimulator, sms: AliyunSms) -> None:
    params = sms.signed_params(new_phone(), "123456")
    post_raw(simulator, params)

    status, answer = post_raw(simulator, params)

    assert (status, answer["Code"]) == (400, "SignatureNonceUsed")


def test_a_timestamp_older_than_fifteen_minutes_is_refused(simulator: RunningSimulator, sms: AliyunSms) -> None:
    params = sms.signed_params(new_phone(), "123456", now=datetime.now(UTC) - timedelta(minutes=16))

    status, answer = post_raw(simulator, params)

    assert (status, answer["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_a_request_without_signature_is_refused(simulator: RunningSimulator, sms: AliyunSms) -> None:
    params = {k: v for k, v in sms.signed_params(new_phone(), "123456").items() if k != "Signature"}

    assert post_raw(simulator, params)[1]["Code"] == "MissingSignature"


def test_an_unreachable_sms_provider_is_unavailable(simulator: RunningSimulator) -> None:
    sms = AliyunSms(replace(simulator.aliyun_sms_settings(timeout_seconds=1), endpoint="http://127.0.0.1:9/"))

    with pytest.raises(DomainError) as refused:
        sms.send_code(new_phone(), "123456", "login")

    assert (refused.value.code, refused.value.kind) == ("SMS_UNAVAILABLE", ErrorKind.UNAVAILABLE)
