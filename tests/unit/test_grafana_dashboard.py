"""The shipped Grafana dashboard and Prometheus example read what /metrics really serves."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import override_settings

from apps.workers.histogram import bucket_index

from ..support.metrics import GUARDED, families, scrape, stored_session

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/loadtest-dashboard.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"

# Labels Prometheus adds to every scraped series, and PromQL's words that look like names.
SCRAPE_LABELS = {"job", "instance"}
_METRIC = re.compile(r"\bloadtest_[a-z_]+\b")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-z_]+)\s*,\s*([a-z_]+)\s*\)")


def strings_under(node, key: str) -> list[str]:
    """Every string value of ``key`` anywhere in a JSON document."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                found.append(value)
            found += strings_under(value, key)
    elif isinstance(node, list):
        for item in node:
            found += strings_under(item, key)
    return found


@pytest.fixture
def served():
    """The sample names and label names of a real /metrics answer with one session."""
    session = stored_session(requests=2, failures_by_class={"timeout": 1},
                             histogram={str(bucket_index(40_000)): 2}, mean_ms=40.0)  # fmt: skip
    session.target_rps = 50.0  # open model: loadtest_target_rps is served too
    session.save(update_fields=["target_rps"])
    with override_settings(**GUARDED):
        parsed = families(scrape())
    names, labels = set(), set(SCRAPE_LABELS)
    for family in parsed.values():
        for sample in family.samples:
            names.add(sample.name)
            labels.update(sample.labels)
    return names, labels


@pytest.mark.django_db
def test_every_metric_and_label_the_dashboard_queries_is_served(served):
    names, labels = served
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = strings_under(dashboard["panels"], "expr")
    variables = strings_under(dashboard["templating"], "definition")
    assert len(exprs) >= 10

    used_metrics = {name for text in exprs + variables for name in _METRIC.findall(text)}
    assert used_metrics - names == set()
    # Each family the issue asks for is charted.
    for wanted in ("loadtest_requests_total", "loadtest_failures_total",
                   "loadtest_request_duration_seconds_bucket", "loadtest_users",
                   "loadtest_workers"):  # fmt: skip
        assert wanted in used_metrics
    used_labels = set()
    for text in exprs:
        used_labels.update(_MATCHER_LABEL.findall(text))
        for group in _GROUPING.findall(text):
            used_labels.update(label.strip() for label in group.split(",") if label.strip())
    for text in variables:
        for metric, label in _LABEL_VALUES.findall(text):
            assert metric in names
            used_labels.add(label)
    assert used_labels - labels == set()
    assert {"session_id", "endpoint", "failure_class", "le"} <= used_labels
    # Legends name only served labels too.
    legends = strings_under(dashboard["panels"], "legendFormat")
    assert {name for text in legends for name in re.findall(r"{{(\w+)}}", text)} <= labels


def test_dashboard_takes_its_datasource_as_an_input_and_has_a_session_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["pluginId"]) == ("DS_PROMETHEUS", "prometheus")
    uids = set(strings_under(dashboard["panels"], "uid"))
    assert uids == {"${DS_PROMETHEUS}"}
    (session,) = dashboard["templating"]["list"]
    assert session["name"] == "session"
    assert session["definition"].startswith("label_values(")
    assert all('session_id=~"$session"' in expr
               for expr in strings_under(dashboard["panels"], "expr")
               if "loadtest_workers" not in expr and "loadtest_engine_up" not in expr)  # fmt: skip
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


def test_prometheus_example_scrapes_metrics_with_a_bearer_token_file():
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert "credentials_file" in job["authorization"]  # never the token inline
    assert "credentials" not in job["authorization"]
