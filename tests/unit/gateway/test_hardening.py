"""Answers to a hostile client: bounded metric labels, method handling, protective headers."""

from __future__ import annotations

from flask.testing import FlaskClient
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
