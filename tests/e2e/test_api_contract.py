"""Every documented operation, fuzzed by schemathesis against the running gateway as a shopper and as an admin.

No answer may be a 5xx, and every answer must conform to the OpenAPI document: its status
documented, its body valid against the declared schema (errors against the error format). Each
new route is covered the day it lands, because it is in /openapi.json.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fixtures.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.long]

EXAMPLES_PER_OPERATION = 25  # ~100 operations x 4 runs: the longest test of the suite, kept within CI's budget
# Not checked: that every schema-valid request is accepted. Business rules legitimately refuse
# well-formed input (a code that was never sent: 400 SMS_CODE_INVALID; a wrong password: 401).


# Invalid input is rejected with schemathesis's usual statuses, plus 413/414: a request line or body past the
# gateway's limits is refused before it is parsed (found by a 7 kB query of junk category ids).
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429", "5xx"]


@pytest.fixture(scope="module")
def api_schema(platform: Platform) -> schemathesis.BaseSchema:
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    return schemathesis.openapi.from_url(f"{platform.base_url}/openapi.json", config=config)


# Each run's own shopper: a run ends with POST /auth/logout-all, which ends its token's sessions (401 SESSION_ENDED).
SHOPPER_PHONES = {GenerationMode.POSITIVE: "13700009999", GenerationMode.NEGATIVE: "13700009998"}


@pytest.fixture
def token(platform: Platform, who: str, mode: GenerationMode) -> str:
    """A fresh access token of the run: a shopper's (SMS login, one phone per mode) or the admin's (password login)."""
    if who == "admin":
        reply = requests.post(f"{platform.api}/auth/login/password",
                              json={"phone": platform.admin_phone, "password": platform.admin_password}, timeout=10)
    else:
        phone = SHOPPER_PHONES[mode]
        sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
        reply = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": sent.json()["dev_code"]},
                              timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def ends_own_sessions(operation: schemathesis.APIOperation) -> bool:
    """Logging out everywhere ends the run's token: fuzzed last, so that every other operation meets a live one."""
    return operation.method.upper() == "POST" and operation.path.endswith("/auth/logout-all")


def has_input(operation: schemathesis.APIOperation) -> bool:
    return any(len(part) for part in (operation.path_parameters, operation.query, operation.headers, operation.body))


# Derandomized: CI runs the same examples every time (a red build means a real regression, not a
# lucky draw). Set derandomize=False locally to explore further.
FUZZ = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.timeout(900)  # one run fuzzes every operation; pytest's default of 300 s is per test
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("who", ["shopper", "admin"])
def test_every_operation_answers_within_its_contract(api_schema: schemathesis.BaseSchema, token: str,
                                                     who: str, mode: GenerationMode) -> None:
    bearer = {"Authorization": f"Bearer {token}"}
    operations = sorted((result.ok() for result in api_schema.get_all_operations()), key=ends_own_sessions)
    assert len(operations) >= 4 and ends_own_sessions(operations[-1])  # the document was read, logout-all last

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not has_input(operation):
            continue  # GET /brands: nothing a request could get wrong, so no invalid request exists

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_within_contract(case: schemathesis.Case) -> None:
            # Schemathesis fills the bearer header with junk; ours replaces it. An invalid case
            # without one is testing a missing token, so it goes without.
            keep_out = mode is GenerationMode.NEGATIVE and "Authorization" not in (case.headers or {})
            case.call_and_validate(headers=None if keep_out else bearer, timeout=15,
                                   excluded_checks=[positive_data_acceptance])

        answers_within_contract()
