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

pytestmark = pytest.mark.e2e

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


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> dict[str, str]:
    """An access token for a shopper (SMS login) and for the admin (password login)."""
    phone = "13700009999"
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
    shopper = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": sent.json()["dev_code"]},
                            timeout=10)
    admin = requests.post(f"{platform.api}/auth/login/password",
                          json={"phone": platform.admin_phone, "password": platform.admin_password}, timeout=10)
    assert (shopper.status_code, admin.status_code) == (200, 200), (shopper.text, admin.text)
    return {"shopper": shopper.json()["access_token"], "admin": admin.json()["access_token"]}


def has_input(operation: schemathesis.APIOperation) -> bool:
    return any(len(part) for part in (operation.path_parameters, operation.query, operation.headers, operation.body))


# Derandomized: CI runs the same examples every time (a red build means a real regression, not a
# lucky draw). Set derandomize=False locally to explore further.
FUZZ = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.timeout(900)  # one run fuzzes every operation; pytest's default of 300 s is per test
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("who", ["shopper", "admin"])
def test_every_operation_answers_within_its_contract(api_schema: schemathesis.BaseSchema, tokens: dict[str, str],
                                                     who: str, mode: GenerationMode) -> None:
    token = {"Authorization": f"Bearer {tokens[who]}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 4  # the document was read, not silently empty

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not has_input(operation):
            continue  # GET /brands: nothing a request could get wrong, so no invalid request exists

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_within_contract(case: schemathesis.Case) -> None:
            # Schemathesis fills the bearer header with junk; ours replaces it. An invalid case
            # without one is testing a missing token, so it goes without.
            keep_out = mode is GenerationMode.NEGATIVE and "Authorization" not in (case.headers or {})
            case.call_and_validate(headers=None if keep_out else token, timeout=15,
                                   excluded_checks=[positive_data_acceptance])

        answers_within_contract()
