"""Answers to a hostile client: bounded metric labels, methods, protective headers, chunked bodies."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2
from prometheus_client import REGISTRY


def requests_counted(method: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value(
        "mall_http_requests_total", {"method": method, "route": route, "status": status}) or 0.0


def test_invented_http_methods_are_counted_as_other_and_add_no_series(client: FlaskClient) -> None:
    before = requests_counted("other", "unmatched", "405")

    replies = [client.open("/healthz", method=method) for method in ("QWERTYZZ", "X-EVIL-1", "qwertyzz")]

    assert [reply.status_code for reply in replies] == [405, 405, 405]
    assert requests_counted("other", "unmatched", "405") == before + 3
    scraped = client.get("/metrics").get_data(as_text=True)
    assert "QWERTYZZ" not in scraped and "X-EVIL-1" not in scraped and "qwertyzz" not in scraped


def test_known_http_methods_keep_their_own_label(client: FlaskClient) -> None:
    before = requests_counted("DELETE", "unmatched", "405")

    client.delete("/healthz")

    assert requests_counted("DELETE", "unmatched", "405") == before + 1


def test_a_wrong_method_is_405_in_the_error_format_with_the_allowed_methods(client: FlaskClient) -> None:
    response = client.get("/api/v1/auth/sms-codes", headers={"X-Request-ID": "r-405"})

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["request_id"]) == (
        405, "METHOD_NOT_ALLOWED", "r-405")
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_options_on_a_post_route_answers_allow_without_validating_or_counting(
        client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    replies = [client.options("/api/v1/auth/sms-codes") for _ in range(30)]  # the per-IP limit is 20 a minute

    assert [reply.status_code for reply in replies] == [204] * 30
    assert set(replies[-1].headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert clients.user.SendSmsCode.calls == []
    sent = client.post("/api/v1/auth/sms-codes", json={"phone": "13800138000", "purpose": "login"})
    assert sent.status_code == 202


def test_options_on_an_admin_route_needs_no_token(client: FlaskClient) -> None:
    response = client.options("/api/v1/admin/analytics/overview")

    assert response.status_code == 204
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize("path", ["/api/v1/auth/sms-codes", "/api/v1/products/5", "/healthz", "/openapi.json"])
def test_options_answers_no_content_with_allow_and_no_body(client: FlaskClient, path: str) -> None:
    response = client.options(path)

    assert (response.status_code, response.data, "Content-Type" in response.headers,
            "Content-Length" in response.headers, bool(response.headers["Allow"])) == (204, b"", False, False, True)


def test_a_cross_origin_preflight_is_granted_nothing(client: FlaskClient) -> None:
    response = client.options("/api/v1/auth/sms-codes", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})

    assert (response.status_code, sorted(h for h in response.headers.keys() if h.lower().startswith("access-control"))
            ) == (204, [])


def test_options_on_an_unknown_path_is_404_in_the_error_format(client: FlaskClient) -> None:
    response = client.options("/api/v1/nothing-here")

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "NOT_FOUND")


def test_the_openapi_document_says_how_options_is_answered(client: FlaskClient) -> None:
    description = client.get("/openapi.json").get_json()["info"]["description"]

    assert "OPTIONS on any path answers 204 with an Allow header" in description


def test_token_responses_are_not_stored_by_caches(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    clients.user.LoginWithSms.reply = user_pb2.LoginResponse(access_token="a", refresh_token="r", expires_in=900)

    response = client.post("/api/v1/auth/login/sms", json={"phone": "13800138000", "code": "123456"})

    assert (response.status_code, response.headers["Cache-Control"]) == (200, "no-store")


@pytest.mark.parametrize("path", ["/api/v1/auth/sms-codes", "/api/v1/admin/analytics/overview", "/api/v1/nowhere"])
def test_api_errors_are_not_stored_by_caches_either(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert (response.status_code // 100, response.headers["Cache-Control"]) == (4, "no-store")


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/metrics", "/nowhere", "/api/v1/auth/sms-codes"])
def test_every_response_forbids_content_sniffing(client: FlaskClient, path: str) -> None:
    assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def post_chunked(client: FlaskClient, body: bytes):  # type: ignore[no-untyped-def]
    """As gunicorn hands over a chunked body: de-chunked, no Content-Length, the stream ends where the body does."""
    return client.post("/api/v1/auth/sms-codes", input_stream=io.BytesIO(body),
                       headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    response = post_chunked(client, b'{"phone": "' + b"1" * (5 << 20) + b'", "purpose": "login"}')

    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert clients.user.SendSmsCode.calls == []


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    body = b'{"phone": "13800138000", "purpose": "login"}'
    response = post_chunked(client, body + b" " * ((1 << 20) - len(body)))

    assert response.status_code == 202
    assert [call.message.phone for call in clients.user.SendSmsCode.calls] == ["13800138000"]
