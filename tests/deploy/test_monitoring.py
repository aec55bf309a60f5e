"""Monitoring: alert rules pass promtool's checks and unit tests, and every expression names a metric the code exports."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.helpers import K8S, ROOT, kustomize, require_tool

MONITORING = K8S / "monitoring"
RULES = MONITORING / "rules" / "minimall.rules.yml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
# Series Prometheus itself adds to every scrape, and those the exporters of deploy/k8s/base export (kafka-exporter,
# the redis-exporter beside Redis).
PROMETHEUS_SERIES = {"up"}
EXPORTER_SERIES = {"kafka_consumergroup_lag", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_errors_total"}
# The cluster's kube-state-metrics, which this monitoring does not deploy: the backup CronJob's last success.
KUBE_STATE_SERIES = {"kube_cronjob_status_last_successful_time", "kube_cronjob_created"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # A guard against a hung promtool, not a speed check: the unit tests of 40 rules take ~40 s of CPU, and
    # minutes of wall time on two busy cores.
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def exported_metrics() -> set[str]:
    """Every series name the code's prometheus_client metrics expose, with the suffixes each type adds."""
    names = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "gateway").rglob("*.py")]:
        for kind, name in pattern.findall(path.read_text()):
            if kind == "Counter":
                names |= {f"{name.removesuffix('_total')}_total", f"{name.removesuffix('_total')}_created"}
            elif kind == "Gauge":
                names.add(name)
            else:
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
    return names


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects: identifiers that are not functions, keywords, labels or strings."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)                      # label matchers
    expr = re.sub(r"\$\{?\w+\}?", "", expr)                    # Grafana variables
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\[[^\]]*\]", "", expr)                     # ranges
    tokens = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {t for t in tokens if t.lower() not in PROMQL_WORDS}


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


def dashboard_expressions(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return [re.sub(r"^label_values\((.*), *\w+\)$", r"\1", e) for e in exprs]


def test_the_code_exports_the_metrics_the_alerts_are_built_on() -> None:
    exported = exported_metrics()
    assert {"mall_http_requests_total", "mall_http_request_seconds_bucket", "mall_grpc_server_handled_total",
            "mall_outbox_pending_events", "mall_consumer_failures_total", "mall_events_consumed_total",
            "mall_consumer_offset_out_of_range_total"} <= exported


BUSINESS_METRICS = {"mall_orders_created_total", "mall_gmv_fen_total", "mall_payments_total",
                    "mall_payment_notify_rejected_total", "mall_stock_reservation_failures_total",
                    "mall_recharges_total", "mall_recharged_fen_total", "mall_withdrawals_total",
                    "mall_withdrawn_fen_total", "mall_refunds_abnormal", "mall_refunds_abnormal_oldest_seconds",
                    "mall_refunds_paid_after_close_total", "mall_refunds_pending_stuck",
                    "mall_refunds_pending_stuck_oldest_seconds", "mall_orders_unpaid_overdue",
                    "mall_payments_after_stock_hold_total", "mall_wallet_charges_awaiting_staff",
                    "mall_recharges_pending_overdue", "mall_recharges_pending_overdue_oldest_seconds",
                    "mall_withdrawals_paying_overdue", "mall_withdrawals_paying_overdue_oldest_seconds",
                    "mall_stock_reservations_expired_total", "mall_checkout_holds_expired_total",
                    "mall_expired_holds_paid_total", "mall_stock_reservations_deferred_total",
                    "mall_checkout_holds_kept_total",
                    "mall_stock_reservations_confirmed_by_sweep_total", "mall_stock_oversold_units_total"}


def test_the_business_kpi_dashboard_shows_every_business_metric_the_code_exports() -> None:
    assert BUSINESS_METRICS <= exported_metrics()
    shown = {name for expr in dashboard_expressions(MONITORING / "dashboards" / "business-kpis.json")
             for name in metric_names(expr)}
    assert shown - PROMETHEUS_SERIES == BUSINESS_METRICS


def test_metric_names_are_read_from_expressions_without_functions_labels_or_keywords() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate(mall_http_request_seconds_bucket'
            '{route!~"/metrics|up", namespace="$namespace"}[$__rate_interval]))) > 1 '
            'and on (namespace) up{job="minimall"} unless ignoring (x) minimall:http_requests:rate5m offset 5m')
    assert metric_names(expr) == {"mall_http_request_seconds_bucket", "up", "minimall:http_requests:rate5m"}


def test_every_rule_expression_names_only_metrics_the_code_exports_or_rules_record() -> None:
    recorded = {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}
    known = exported_metrics() | PROMETHEUS_SERIES | EXPORTER_SERIES | KUBE_STATE_SERIES | recorded
    unknown = {name for expr in rule_expressions() for name in metric_names(expr)} - known
    assert unknown == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_expression_names_only_metrics_the_code_exports(path: Path) -> None:
    exprs = dashboard_expressions(path)
    assert len(exprs) >= 5
    names = {name for expr in exprs for name in metric_names(expr)}
    assert names - (exported_metrics() | PROMETHEUS_SERIES | EXPORTER_SERIES) == set()
    assert any(name.startswith("mall_") for name in names)


def test_there_are_dashboards_for_gateway_traffic_service_red_metrics_the_kafka_pipeline_and_business_kpis() -> None:
    assert [p.stem for p in DASHBOARDS] == ["business-kpis", "gateway-traffic", "kafka-pipeline", "service-red"]
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_the_alerts_ops_rely_on_exist() -> None:
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert alerts == {"MinimallTargetDown", "GatewayHighErrorRate", "GatewayHighLatencyP99", "ServiceHighErrorRate",
                      "ServiceHighLatencyP99", "DatabaseStatementsCutShort", "OutboxBacklogGrowing", "OutboxPublishFailing", "OutboxEventsDeadLettered",
                      "OutboxEventsWaiting",
                      "ConsumerHandlerFailing", "EventsDeadLettered", "ConsumerOffsetOutOfRange", "ConsumerLagHigh",
                      "ConsumerGroupMissing", "EventsPublishedButNotConsumed", "PaymentNotifyRejected", "StockReservationFailuresHigh",
                      "ExpiredCheckoutHoldPaid", "AbnormalRefundWaiting", "RefundPaidAfterClose",
                      "UnpaidOrdersPastDeadline", "PaymentAfterStockHold",
                      "WalletChargeAwaitingStaff", "RefundPendingStuck", "RechargePendingOverdue",
                      "WithdrawalPayingOverdue", "StockReservationsUnsettled", "StockOversold", "CheckoutHoldsUnsettled",
                      # rate limits, paid SMS codes and paid real-name checks
                      "RateLimitStoreUnreachable", "SmsDailyBudgetNearlySpent", "SmsDailyBudgetExhausted",
                      "IdentityDailyBudgetExhausted",
                      # the gateway's Redis filling up (it refuses writes when full)
                      "RedisMemoryNearlyFull", "RedisRefusingWrites",
                      # the nightly database backup (deploy/k8s/overlays/prod/backup.yaml), from kube-state-metrics
                      "DatabaseBackupTooOld", "DatabaseBackupUnwatched"}


def test_the_missing_consumer_group_alert_expects_exactly_the_groups_the_manifests_deploy() -> None:
    generator = runpy.run_path(str(K8S / "generate.py"), run_name="generator")
    rule = next(rule for group in rule_groups() for rule in group["rules"] if rule.get("alert") == "ConsumerGroupMissing")
    expected = set(re.findall(r'"consumergroup", "(\w+)", "", ""', rule["expr"]))
    assert expected == set(generator["CONSUMING"]) == {"user", "product", "member", "analytics"}


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_has_a_runbook() -> None:
    missing = [rule["alert"] for group in rule_groups() for rule in group["rules"]
               if "alert" in rule and not rule["annotations"].get("runbook", "").strip()]
    assert missing == []


def test_the_runbooks_name_only_metrics_the_code_exports() -> None:
    runbooks = [rule["annotations"]["runbook"] for group in rule_groups() for rule in group["rules"]
                if "runbook" in rule.get("annotations", {})]
    named = {name for runbook in runbooks for name in re.findall(r"\bmall_[a-z0-9_]+", runbook)}
    assert named and named - exported_metrics() == set()


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(group["rules"]) for group in rule_groups())
    assert rules >= 26 and f"SUCCESS: {rules} rules found" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "minimall.test.yml", cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_promtool_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load((RULES.parent / "minimall.test.yml").read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case["exp_alerts"]}
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert firing == alerts
    assert quiet == alerts


def test_promtool_accepts_the_scrape_configuration(tmp_path: Path) -> None:
    # Debian's Prometheus is built without Kubernetes service discovery: check everything else
    # (relabelling, rule files, alerting) with a file_sd stand-in for kubernetes_sd_configs.
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    (tmp_path / "targets.json").write_text("[]")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(RULES.read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_backup_alert_watches_the_cronjob_the_prod_overlay_deploys() -> None:
    rule = next(rule for group in rule_groups() for rule in group["rules"] if rule.get("alert") == "DatabaseBackupTooOld")
    cronjobs = [o["metadata"]["name"] for o in kustomize(K8S / "overlays" / "prod") if o["kind"] == "CronJob"]
    assert set(re.findall(r'cronjob="([\w-]+)"', rule["expr"])) == set(cronjobs) == {"db-backup"}


def test_the_lag_series_come_from_the_kafka_exporter_the_base_deploys() -> None:
    base = (K8S / "base" / "kustomization.yaml").read_text()
    exporter = (K8S / "base" / "kafka-exporter.yaml").read_text()
    assert "- kafka-exporter.yaml" in base and "image: danielqsj/kafka-exporter:" in exporter
    assert 'prometheus.io/port: "9308"' in exporter


def test_the_redis_series_come_from_the_exporter_beside_the_redis_that_refuses_writes_when_full() -> None:
    pod = next(d for d in yaml.safe_load_all((K8S / "base" / "redis.yaml").read_text())
               if d["kind"] == "Deployment")["spec"]["template"]
    redis, exporter = pod["spec"]["containers"]
    policy = redis["args"][redis["args"].index("--maxmemory-policy") + 1]
    assert (policy, exporter["image"].split(":")[0], pod["metadata"]["annotations"]["prometheus.io/port"]) == (
        "noeviction", "oliver006/redis_exporter", "9121")
    assert {"containerPort": 9121, "name": "metrics"} in exporter["ports"]


def test_the_monitoring_kustomization_builds_valid_config_maps() -> None:
    objects = kustomize(MONITORING)
    assert sorted(o["metadata"]["name"] for o in objects) == [
        "minimall-grafana-dashboards", "minimall-prometheus-config", "minimall-prometheus-rules"]
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    dashboards = next(o for o in objects if o["metadata"]["name"] == "minimall-grafana-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(dashboards["data"]) == [p.name for p in DASHBOARDS]
