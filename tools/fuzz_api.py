"""Ad-hoc contract fuzz of a running gateway, beyond what tests/e2e/test_api_contract.py runs in CI.

Not part of `make test`: it explores (random seeds, more examples, coverage-phase boundary values)
and prints what it found, for a human to turn into regression tests. schemathesis is a dev
dependency already (requirements-dev.lock); with a production-only venv install it ad hoc:
`.venv/bin/pip install schemathesis` (never add it to requirements.lock for this).

    make run                     # in another terminal; or any gateway (then pass --admin-password)
    .venv/bin/python -m tools.fuzz_api [--base-url http://127.0.0.1:8080] [--examples 50] [--seed N]
        [--path /orders] [--exclude /admin/] [--verbose]

It logs in a shopper through the SMS simulator (dev_code) and the admin by password, then, for
each documented operation (admin ones as the admin, the rest as the shopper; logout operations
skipped: they end the run's tokens), sends valid and invalid examples and reports:
- every answer that breaks the contract (5xx, undocumented status, body not matching its schema
  or the error format, wrong content type), with a curl command reproducing it;
- the 4xx answers to *valid* examples grouped by operation and error code: business rules refuse
  well-formed input legitimately (a wrong SMS code), but a field error there means the document
  allows what the gateway refuses, i.e. the document is wrong.
Exit status 1 when a contract check failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from services.common.config import Env, var_dir

ROOT = Path(__file__).resolve().parents[1]

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429"]


def log_in(api: str, admin_phone: str, admin_password: str, shopper_phone: str) -> tuple[str, str]:
    """(shopper token, admin token)."""
    sent = requests.post(f"{api}/auth/sms-codes", json={"phone": shopper_phone, "purpose": "login"}, timeout=10)
    sent.raise_for_status()
    shopper = requests.post(f"{api}/auth/login/sms", json={"phone": shopper_phone, "code": sent.json()["dev_code"]},
                            timeout=10)
    admin = requests.post(f"{api}/auth/login/password", json={"phone": admin_phone, "password": admin_password},
                          timeout=10)
    shopper.raise_for_status()
    admin.raise_for_status()
    return shopper.json()["access_token"], admin.json()["access_token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--admin-phone", default=None, help="default: make run's (var/dev-admin.json)")
    parser.add_argument("--admin-password", default=None, help="default: make run's (var/dev-admin.json)")
    parser.add_argument("--shopper-phone", default=f"137{random.randrange(10**8):08d}",
                        help="default: a new one each run (an SMS code cannot be sent again within a minute)")
    parser.add_argument("--examples", type=int, default=50, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--path", default="", help="only operations whose path contains this")
    parser.add_argument("--verbose", action="store_true", help="one example of each refusal of a valid example")
    parser.add_argument("--exclude", default="", help="skip operations whose path contains this")
    args = parser.parse_args()
    if args.admin_password is None:  # make run's admin (tools/devrun.py admin_credentials)
        saved = json.loads((var_dir(Env(), root=ROOT) / "dev-admin.json").read_text())
        args.admin_phone, args.admin_password = args.admin_phone or saved["phone"], saved["password"]
    args.admin_phone = args.admin_phone or "13800000000"  # DEV_ADMIN_PHONE's default

    shopper, admin = log_in(f"{args.base_url}/api/v1", args.admin_phone, args.admin_password, args.shopper_phone)
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    schema = schemathesis.openapi.from_url(f"{args.base_url}/openapi.json", config=config)
    failures: dict[str, str] = {}
    refused: collections.Counter[tuple[str, str]] = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    cases = 0

    def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, token: str) -> None:
        checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

        @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            # Schemathesis fills the bearer header with junk; an invalid case without one tests a missing token.
            keep_out = mode is GenerationMode.NEGATIVE and "Authorization" not in (case.headers or {})
            headers = {} if keep_out else {"Authorization": f"Bearer {token}"}
            response = case.call(headers=headers, timeout=20)
            if mode is GenerationMode.POSITIVE and 400 <= response.status_code < 500:
                try:
                    error = response.json()["error"]
                    fields = ",".join(sorted(error.get("details", {}))) if error["code"] == "INVALID_REQUEST" else ""
                    key = operation.label, f"{response.status_code} {error['code']} {fields}".strip()
                    refused[key] += 1
                    example.setdefault(key, f"{error.get('details', '')}\n        {case.as_curl_command(headers=headers)}")
                except (ValueError, KeyError, TypeError):
                    pass
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except AssertionError as exc:  # recorded, not raised: no shrinking, the next example runs
                failures.setdefault(operation.label, f"{exc}\n{case.as_curl_command(headers=headers)}")

        if args.seed is not None:
            run = seed(args.seed)(run)
        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        if "logout" in operation.path or args.path not in operation.path or (args.exclude and args.exclude in operation.path):
            continue  # logging out ends the run's tokens
        has_input = any(len(part) for part in (operation.path_parameters, operation.query, operation.headers,
                                               operation.body))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if has_input else 1]:
            try:
                fuzz(operation, mode, admin if "/admin/" in operation.path else shopper)
            except Exception as exc:  # noqa: BLE001 - e.g. a schema hypothesis cannot generate from
                failures.setdefault(operation.label, f"{mode.value}: {exc!r}"[:2000])
    print(f"{cases} cases")
    print("\nValid examples refused (operation, status, code, fields):")
    for (label, what), count in sorted(refused.items()):
        print(f"  {count:5d}  {label}  {what}")
        if args.verbose:
            print(f"        {example[label, what]}")
    print(f"\n{len(failures)} operations broke the contract")
    for label, what in sorted(failures.items()):
        print(f"\n== {label}\n{what}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
