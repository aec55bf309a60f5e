"""RealNameChecker against the simulated FaceID: TC3 signatures checked, the registry's rule, every Result code."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import replace
from typing import Any

import pytest
import requests

from services.common.errors import DomainError, ErrorKind, InvalidInput, RateLimited
from services.user.realname import RealNameChecker, gb11643_check_character
from tests.fixtures.simulator import RunningSimulator


def new_id_number() -> str:
    """A valid ID number nobody else in the session uses: Beijing Dongcheng, born 1990-2009."""
    first17 = f"110101{1990 + secrets.randbelow(20)}0{1 + secrets.randbelow(9)}1{secrets.randbelow(10)}" \
              f"{secrets.randbelow(1000):03d}"
    return first17 + gb11643_check_character(first17)


@pytest.fixture
def checker(simulator: RunningSimulator) -> RealNameChecker:
    return RealNameChecker(simulator.realname_settings())


def post_raw(simulator: RunningSimulator, headers: dict[str, str], payload: bytes) -> dict[str, Any]:
    response = requests.post(simulator.realname_settings().endpoint, data=payload, headers=headers, timeout=5)
    assert response.status_code == 200
    return response.json()["Response"]


def test_a_valid_id_number_matches_any_well_formed_name(checker: RealNameChecker) -> None:
    assert checker.verify("张三", new_id_number()) is None


def test_the_simulator_answers_a_match_in_faceids_shape(simulator: RunningSimulator,
                                                        checker: RealNameChecker) -> None:
    answer = post_raw(simulator, *checker.signed_request("欧阳·娜娜", new_id_number()))

    assert (sorted(answer), answer["Result"], answer["Description"]) == (
        ["Description", "RequestId", "Result"], "0", "姓名和身份证号一致")


def test_a_registered_id_number_matches_its_holders_name(simulator: RunningSimulator,
                                                        checker: RealNameChecker) -> None:
    id_number = new_id_number()
    simulator.client.register_identity("李四", id_number)

    assert checker.verify("李四", id_number) is None


def test_a_registered_id_number_with_another_name_is_a_mismatch(simulator: RunningSimulator,
                                                                checker: RealNameChecker) -> None:
    id_number = new_id_number()
    simulator.client.register_identity("李四", id_number)

    with pytest.raises(DomainError) as refused:
        checker.verify("王五", id_number)

    assert (refused.value.code, refused.value.kind) == ("IDENTITY_MISMATCH", ErrorKind.BUSINESS_RULE)


def test_an_id_number_the_registry_does_not_know_is_no_record(simulator: RunningSimulator,
                                                              checker: RealNameChecker) -> None:
    id_number = new_id_number()
    simulator.client.register_no_record(id_number)

    with pytest.raises(DomainError) as refused:
        checker.verify("张三", id_number)

    assert (refused.value.code, refused.value.kind) == ("IDENTITY_NO_RECORD", ErrorKind.BUSINESS_RULE)


def test_an_id_number_with_a_wrong_check_character_is_invalid(checker: RealNameChecker) -> None:
    id_number = new_id_number()
    wrong = id_number[:17] + ("0" if id_number[17] != "0" else "1")

    with pytest.raises(InvalidInput) as refused:
        checker.verify("张三", wrong)

    assert refused.value.code == "IDENTITY_ID_NUMBER_INVALID"


@pytest.mark.parametrize("name", ["张", "John Smith", "·张三", "张三3"])
def test_a_name_that_is_not_a_chinese_card_name_is_invalid(checker: RealNameChecker, name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        checker.verify(name, new_id_number())

    assert refused.value.code == "IDENTITY_NAME_INVALID"


@pytest.mark.parametrize(("forced", "error", "code", "kind"), [
    ({"result": "-1"}, DomainError, "IDENTITY_MISMATCH", ErrorKind.BUSINESS_RULE),
    ({"result": "-2"}, InvalidInput, "IDENTITY_ID_NUMBER_INVALID", ErrorKind.INVALID),
    ({"result": "-3"}, InvalidInput, "IDENTITY_NAME_INVALID", ErrorKind.INVALID),
    ({"result": "-4"}, DomainError, "IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    ({"result": "-5"}, DomainError, "IDENTITY_NO_RECORD", ErrorKind.BUSINESS_RULE),
    ({"result": "-6"}, DomainError, "IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    ({"result": "-7"}, RateLimited, "IDENTITY_CHECK_RATE_LIMITED", ErrorKind.RATE_LIMITED),
    ({"error": "InternalError"}, DomainError, "IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE),
    ({"error": "RequestLimitExceeded"}, DomainError, "IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE),
])
def test_each_forced_answer_becomes_its_domain_error(simulator: RunningSimulator, checker: RealNameChecker,
                                                     forced: dict[str, str], error: type[DomainError], code: str,
                                                     kind: ErrorKind) -> None:
    simulator.client.realname_fail_next(**forced)

    with pytest.raises(error) as refused:
        checker.verify("张三", new_id_number())

    assert (refused.value.code, refused.value.kind) == (code, kind)


def test_a_tampered_body_fails_signature_verification(simulator: RunningSimulator, checker: RealNameChecker) -> None:
    headers, payload = checker.signed_request("张三", new_id_number())
    tampered = json.dumps({**json.loads(payload), "Name": "李四"}).encode()

    assert post_raw(simulator, headers, tampered)["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_a_wrong_secret_key_fails_verification_and_the_adapter_reports_unavailable(
        simulator: RunningSimulator, caplog: pytest.LogCaptureFixture) -> None:
    checker = RealNameChecker(replace(simulator.realname_settings(), secret_key="not-the-key"))

    answer = post_raw(simulator, *checker.signed_request("张三", new_id_number()))
    with caplog.at_level(logging.ERROR, logger="services.user.realname"), pytest.raises(DomainError) as refused:
        checker.verify("张三", new_id_number())

    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert (refused.value.code, refused.value.kind) == ("IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE)
    assert "AuthFailure.SignatureFailure" in caplog.text and "not-the-key" not in caplog.text


def test_an_unknown_secret_id_is_refused(simulator: RunningSimulator) -> None:
    checker = RealNameChecker(replace(simulator.realname_settings(), secret_id="AKIDunknown"))

    answer = post_raw(simulator, *checker.signed_request("张三", new_id_number()))

    assert answer["Error"]["Code"] == "AuthFailure.SecretIdNotFound"


def test_a_request_signed_more_than_five_minutes_ago_is_refused(simulator: RunningSimulator,
                                                                checker: RealNameChecker) -> None:
    headers, payload = checker.signed_request("张三", new_id_number(), timestamp=int(time.time()) - 301)

    assert post_raw(simulator, headers, payload)["Error"]["Code"] == "AuthFailure.SignatureExpire"


def test_a_request_without_authorization_is_refused(simulator: RunningSimulator, checker: RealNameChecker) -> None:
    headers, payload = checker.signed_request("张三", new_id_number())
    del headers["Authorization"]

    assert post_raw(simulator, headers, payload)["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


def test_an_unreachable_provider_is_unavailable(simulator: RunningSimulator) -> None:
    checker = RealNameChecker(replace(simulator.realname_settings(timeout_seconds=1), endpoint="http://127.0.0.1:9/"))

    with pytest.raises(DomainError) as refused:
        checker.verify("张三", new_id_number())

    assert (refused.value.code, refused.value.kind) == ("IDENTITY_CHECK_UNAVAILABLE", ErrorKind.UNAVAILABLE)
