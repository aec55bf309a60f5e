"""Request ids, what is passed on to the services with each call, and input validation."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from services.common.logs import request_id_var

SMS_CODES = "/api/v1/auth/sms-codes"
OVERVIEW = "/api/v1/admin/analytics/overview"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


# Request ids

@pytest.mark.parametrize("incoming", ["abc-123", "req.2026_11_26", "A" * 64])
def test_well_formed_request_id_from_the_client_is_echoed(client: FlaskClient, incoming: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["has space", "A" * 65, "semi;colon", "<script>", "中文"])
def test_malformed_request_id_is_replaced_by_a_fresh_one(client: FlaskClient, incoming: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": incoming.encode().decode("latin-1")})

    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


def test_request_without_id_gets_a_fresh_one_each_time(client: FlaskClient) -> None:
    first, second = (client.get("/healthz").headers["X-Request-ID"] for _ in range(2))

    assert (bool(GENERATED_ID.fullmatch(first)), bool(GENERATED_ID.fullmatch(second)), first != second) == (
        True, True, True)


def test_error_body_carries_the_request_id(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"X-Request-ID": "trace-me-1"})

    assert response.get_json()["error"]["request_id"] == "trace-me-1"


def test_request_id_is_not_left_behind_after_the_request(client: FlaskClient) -> None:
    client.get("/healthz", headers={"X-Request-ID": "leak-check"})

    assert request_id_var.get() == ""


def test_request_id_and_bearer_token_are_passed_to_the_service(client: FlaskClient, clients, mint) -> None:
    token = mint(roles="admin")

    client.get(OVERVIEW, headers={"X-Request-ID": "abc-123", "Authorization": f"Bearer {token}"})

    call = clients.analytics.GetOverview.calls[0]
    assert (call.metadata, call.timeout) == ({"x-request-id": "abc-123", "authorization": f"Bearer {token}"}, 2.5)


def test_generated_request_id_is_the_one_passed_to_the_service(client: FlaskClient, clients) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"})

    assert clients.user.SendSmsCode.calls[0].metadata == {"x-request-id": response.headers["X-Request-ID"]}


# Validation

def test_body_missing_a_required_field_is_refused_naming_it(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000"}, headers={"X-Request-ID": "r1"})

    assert (response.status_code, response.get_json()) == (400, {"error": {
        "code": "INVALID_REQUEST", "message": "the request body is invalid", "request_id": "r1",
        "details": {"purpose": "'purpose' is a required property"}}})


def test_every_bad_field_is_reported(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "12345", "purpose": "payment"})

    assert (response.status_code, sorted(response.get_json()["error"]["details"])) == (400, ["phone", "purpose"])


def test_field_detail_says_what_is_wrong(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "12345", "purpose": "login"})

    assert response.get_json()["error"]["details"] == {"phone": "'12345' does not match '^1[3-9][0-9]{9}$'"}


def test_unknown_body_field_is_refused(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login", "debug": True})

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"body": "Additional properties are not allowed ('debug' was unexpected)"})


@pytest.mark.parametrize(("data", "content_type"), [
    ("phone=13800138000&purpose=login", "application/x-www-form-urlencoded"),
    ("{not json", "application/json"),
    ("", "application/json"),
])
def test_body_that_is_not_json_is_refused(client: FlaskClient, data: str, content_type: str) -> None:
    response = client.post(SMS_CODES, data=data, content_type=content_type)

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        400, "INVALID_REQUEST", {"body": "expected application/json"})


def test_json_that_is_not_an_object_is_refused(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json=["13800138000", "login"])

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"body": "['13800138000', 'login'] is not of type 'object'"})


def test_invalid_request_never_reaches_the_service(client: FlaskClient, clients) -> None:
    client.post(SMS_CODES, json={"phone": "12345", "purpose": "login"})

    assert clients.user.SendSmsCode.calls == []


def test_sms_login_code_must_be_six_digits(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/auth/login/sms", json={"phone": "13800138000", "code": "12345"})

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.user.LoginWithSms.calls) == (
        400, ["code"], [])


def test_bad_query_date_is_refused_naming_the_parameter(client: FlaskClient, bearer, clients) -> None:
    response = client.get(f"{OVERVIEW}?from=26-11-2026", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"], clients.analytics.GetOverview.calls) == (400, {
        "code": "INVALID_REQUEST", "message": "the request query is invalid",
        "request_id": response.headers["X-Request-ID"],
        "details": {"from": "'26-11-2026' does not match '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"}}, [])


def test_unknown_query_parameter_is_refused(client: FlaskClient, bearer) -> None:
    response = client.get(f"{OVERVIEW}?since=2026-11-01", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"query": "Additional properties are not allowed ('since' was unexpected)"})


def test_access_is_checked_before_input(client: FlaskClient) -> None:
    response = client.get(f"{OVERVIEW}?from=bad")

    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "AUTH_REQUIRED")
