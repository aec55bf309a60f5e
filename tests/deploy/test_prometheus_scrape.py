"""A real Prometheus (Debian's package) scrapes the e2e platform: every target up, key series present, rules healthy."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from services.common.config import SERVICES
from services.common.devbroker import free_port
from tests.deploy.helpers import K8S, require_tool
from tests.fixtures.platform import Platform

pytestmark = pytest.mark.e2e

RULES = K8S / "monitoring" / "rules" / "minimall.rules.yml"


def platform_environment(platform: Platform) -> dict[str, str]:
    """The environment the fixture gave the platform, read back from its devrun process.

    The fixture keeps the metrics ports it chose to itself; every process it started carries
    them, and is the only one whose MINIMALL_VAR is this platform's temporary folder.
    """
    wanted = f"MINIMALL_VAR={platform.var_dir}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if wanted in entries:
            return dict(e.decode().split("=", 1) for e in entries if b"=" in e)
    pytest.fail(f"no process of the platform in /proc (MINIMALL_VAR={platform.var_dir})")


def scrape_targets(platform: Platform) -> list[dict[str, Any]]:
    """One static target per process, labelled as the Kubernetes scrape config labels pods."""
    env = platform_environment(platform)
    gateway = platform.base_url.removeprefix("http://")
    targets = [{"targets": [gateway], "labels": {"app": "gateway", "component": "gateway"}}]
    targets += [{"targets": [f"127.0.0.1:{env[f'{s.upper()}_METRICS_PORT']}"],
                 "labels": {"app": s, "component": "server"}} for s in SERVICES]
    return targets


@pytest.fixture(scope="module")
def prometheus(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Prometheus scraping the platform every second, with MiniMall's alert rules loaded."""
    binary = require_tool("prometheus")
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "rules.yml").write_text(RULES.read_text())
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": ["rules.yml"],
              "scrape_configs": [{"job_name": "minimall", "static_configs": scrape_targets(platform)}]}
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, "--config.file=prometheus.yml", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{base}/-/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start:\n{(directory / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["result"]


def poll(what: str, probe: Any, timeout_seconds: float = 60) -> Any:
    """probe()'s first truthy answer; fails the test with the last answer after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_seconds}s; last answer: {answer!r}")
        time.sleep(0.5)


def test_prometheus_scrapes_every_process_of_the_platform_and_all_are_up(prometheus: str) -> None:
    def health() -> dict[str, str] | None:
        targets = requests.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        states = {t["labels"]["app"]: t["health"] for t in targets}
        return states if len(states) == 6 and set(states.values()) == {"up"} else None

    states = poll("every target up", health)
    assert sorted(states) == sorted(["gateway", *SERVICES])
    poll("six up series equal to 1", lambda: len(query(prometheus, 'up{job="minimall"} == 1')) == 6)


def test_the_key_series_of_the_gateway_services_and_event_pipeline_are_scraped(prometheus: str) -> None:
    # The platform fixture logged the demo shoppers in through the gateway, the user service wrote
    # their user-registered events, the relay published them and analytics applied them.
    expected = {
        'mall_http_requests_total{app="gateway",route="/api/v1/auth/login/sms",status="200"}': "gateway logins",
        'mall_http_request_seconds_count{app="gateway"}': "gateway latency histogram",
        'mall_grpc_server_handled_total{app="user",service="user",code="OK"}': "user gRPC calls",
        'mall_grpc_server_handling_seconds_bucket{app="user",le="+Inf"}': "user gRPC latency histogram",
        'mall_outbox_published_total{app="user",topic="user-registered"}': "user relay published",
        'mall_events_consumed_total{app="analytics",consumer="analytics",topic="user-registered",outcome="applied"}':
            "analytics applied",
    }
    for series, what in expected.items():
        result = poll(f"{what} ({series})", lambda s=series: query(prometheus, f"{s} > 0"))
        assert result, what


def test_every_alert_rule_evaluates_on_the_real_metrics_and_none_fires(prometheus: str) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # A rule's health is "unknown" until its first evaluation, "err" if the query failed.
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = poll("every rule evaluated healthy", evaluated)
    assert len(rules) == sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
    assert firing == []


def test_the_business_metrics_are_scraped_from_the_services_that_export_them(prometheus: str) -> None:
    # Created at zero when the process starts, so the first order or refusal shows in increase().
    series = ['mall_orders_created_total{app="order"}', 'mall_payments_total{app="order",channel="wechat",result="paid"}',
              'mall_gmv_fen_total{app="order",channel="balance"}', 'mall_payment_notify_rejected_total{app="order"}',
              'mall_stock_reservation_failures_total{app="product",reason="out_of_stock"}',
              'mall_recharges_total{app="member",channel="wechat"}', 'mall_withdrawals_total{app="member",outcome="paid"}',
              'mall_withdrawn_fen_total{app="member"}', 'mall_refunds_paid_after_close_total{app="order"}',
              'mall_refunds_abnormal{app="order"}', 'mall_refunds_abnormal_oldest_seconds{app="order"}',
              'mall_payments_after_stock_hold_total{app="order",channel="wechat"}',
              'mall_wallet_charges_awaiting_staff{app="order"}', 'mall_refunds_pending_stuck{app="order"}',
              'mall_refunds_pending_stuck_oldest_seconds{app="order"}', 'mall_recharges_pending_overdue{app="member"}',
              'mall_recharges_pending_overdue_oldest_seconds{app="member"}', 'mall_withdrawals_paying_overdue{app="member"}',
              'mall_withdrawals_paying_overdue_oldest_seconds{app="member"}']
    for selector in series:
        poll(f"{selector} scraped", lambda s=selector: query(prometheus, s))
    assert query(prometheus, 'mall_orders_created_total{app!="order"}') == []
