"""The alert rules and the dashboard: valid, and built on metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from web import create_app
from worker import metrics
from worker.config import Settings
from worker.runtime import Runtime
from worker.storage.models import utcnow

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "loyalty-relay.json"
METRIC = re.compile(r"\brelay_[a-z0-9_]+")
PROMTOOL = shutil.which("promtool")


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_the_rules_and_they_fire_as_written() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = Path(__file__).with_name("alerts_test.yml")
    tested = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_rule_has_what_an_alert_needs() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "RelayWorkerSilent", "RelayQueueMessagesOld", "RelayDeadDeliveriesGrowing",
        "RelayStoreNeedsReauthorization", "RelayPlatformRateLimited", "RelayWebhooksAnswered5xx",
    }  # fmt: skip
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_metric_the_rules_and_the_dashboard_name_is_served(
    runtime: Runtime, settings: Settings
) -> None:
    exercise_every_instrument()
    text = create_app(settings).test_client().get("/metrics").get_data(as_text=True)
    families = list(text_string_to_metric_families(text))
    served = {family.name for family in families} | {
        sample.name for family in families for sample in family.samples
    }
    named = {
        name
        for expr in [rule["expr"] for rule in alert_rules()] + dashboard_queries()
        for name in METRIC.findall(expr)
    }
    assert named and named <= served, sorted(named - served)


def exercise_every_instrument() -> None:
    """Counters with labels appear once counted: count each once."""
    a_minute_ago = utcnow() - timedelta(minutes=1)
    metrics.webhook_received("salla", "stored")
    metrics.platform_request("salla", 429)
    metrics.delivery_attempt("webhook", metrics.DELIVERED, created_at=a_minute_ago)
    metrics.refresh_finished(a_minute_ago)
    metrics.sweeper_ran()
    metrics.worker_task_finished()
