"""One run, one set of figures: after a real run (real workers, real HTTP), its request rate,
error rate and p50/p95/p99 read the same on every surface that shows them: the session's API
resource, the sessions list (API and page), the live statistics behind the session page, the
report, the comparison, the thresholds' verdicts, /metrics, the CLI summary, JUnit and the
webhooks' summary. Each surface is read as a person or a program reads it, not through the
function that computes them."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from apps.sessions.cli.reports import summary, write_junit
from apps.sessions.integrations.webhooks import session_summary
from apps.sessions.models import LoadTestSession

from ..support.sessions import BRISK, start_load, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = "figures-test-token-0123456789"
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
# Each fails at the end (none aborts), so that JUnit says what it observed.
THRESHOLDS = [f"{name} < 0.001" for name in PERCENTILES] + ["rps < 0.001", "error_rate < 0"]


def finished_run(api, counting_server) -> LoadTestSession:
    """Two endpoints of different speeds, one failing now and then, for about 3 s."""
    counting_server.delays = {"/slow": 0.03}
    counting_server.statuses = {"/broken": 500}
    session_id = start_load(
        api,
        counting_server,
        endpoints=(("fast", "/fast", 4.0), ("slow", "/slow", 2.0), ("broken", "/broken", 1.0)),
        concurrent_users=6,
        duration_minutes="0.05",
        thresholds=THRESHOLDS,
        **BRISK,
    )
    session = wait_for_status(session_id, timeout_s=60)
    assert session.status == "completed", session.end_detail
    session.refresh_from_db()
    assert session.results_final_at is not None
    assert session.total_requests > 20 and 0 < session.total_failures < session.total_requests
    return session


def test_one_run_shows_one_set_of_figures_on_every_surface(
    api, operator, workers, counting_server, forget_redis_sessions, tmp_path
):
    session = finished_run(api, counting_server)
    resource = api.get(f"/api/sessions/{session.pk}/").json()
    figures = {name: resource[name] for name in ("rps", "error_rate", *PERCENTILES)}
    assert all(value is not None for value in figures.values()), figures
    # The three percentiles are of all endpoints together: the slow endpoint's 30 ms sit
    # above the median of a mix that is mostly fast.
    assert figures["p50_ms"] < 30 <= figures["p99_ms"]

    # The sessions list, in the API and on its page.
    listed = api.get("/api/sessions/", {"name": session.session_name}).json()["results"]
    (row,) = [row for row in listed if row["id"] == session.pk]
    assert {name: row[name] for name in figures} == figures
    client = Client()
    client.force_login(operator)
    page = client.get("/sessions/").content.decode()
    row_html = re.search(rf'<tr data-session="{session.pk}">(.*?)</tr>', page, re.S).group(1)
    assert f"{figures['rps']:,.2f}" in row_html
    assert f"{figures['p95_ms']:,.1f} ms" in row_html

    # The statistics the session page renders its header from (and the page's own copy).
    stats = api.get(f"/api/sessions/{session.pk}/stats/").json()
    assert {name: stats["run"][name] for name in figures} == figures
    detail = client.get(f"/sessions/{session.pk}/").content.decode()
    embedded = json.loads(
        re.search(r'id="initial-snapshot"[^>]*>(.*?)</script>', detail, re.S).group(1)
    )
    assert {name: embedded["run"][name] for name in figures} == figures

    # The report (its data, embedded as JSON in the downloaded file).
    report = api.get(f"/api/sessions/{session.pk}/report/").content.decode()
    data = json.loads(re.search(r'id="report-data"[^>]*>(.*?)</script>', report, re.S).group(1))
    assert {name: data["whole"][name] for name in figures} == figures

    # The comparison (with itself: the figures of the one run, side by side).
    other = api.post(f"/api/sessions/{session.pk}/clone/").json()["id"]
    compared = api.get("/api/sessions/compare/", {"ids": f"{session.pk},{other}"})
    assert compared.status_code == 200, compared.json()
    (whole,) = [scope for scope in compared.json()["scopes"] if scope["endpoint"] is None]
    (mine,) = [entry for entry in whole["rows"] if entry["session"] == session.pk]
    assert {name: mine["figures"][name] for name in figures} == figures

    # The thresholds' verdicts: observed is the figure.
    observed = {r["metric"]: r["observed"] for r in resource["threshold_results"]}
    assert {name: observed[name] for name in figures} == figures

    # /metrics, in base units.
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_ADDRESSES=()):
        scraped = Client().get(
            "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
        )
    assert scraped.status_code == 200
    metric = {
        (sample.name, sample.labels.get("quantile")): sample.value
        for family in text_string_to_metric_families(scraped.content.decode())
        for sample in family.samples
        if sample.labels.get("session_id") == str(session.pk)
    }
    assert metric[("loadtest_session_requests_per_second", None)] == figures["rps"]
    assert metric[("loadtest_session_error_ratio", None)] == figures["error_rate"]
    for quantile, name in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
        assert metric[("loadtest_session_latency_seconds", quantile)] == figures[name] / 1000

    # The CLI's summary: the "(all)" row, as printed.
    (all_row,) = [line for line in summary(session).splitlines() if line.startswith("(all)")]
    cells = all_row.split()
    assert cells[3] == f"{figures['error_rate'] * 100:,.2f}"
    assert cells[4] == f"{figures['rps']:,.1f}"
    assert cells[6:9] == [f"{figures[name]:,.1f}" for name in PERCENTILES]

    # JUnit: each failed threshold's message says what was observed (to 4 figures).
    junit = tmp_path / "junit.xml"
    write_junit(junit, session)
    messages = {
        case.get("name").split(" ")[0]: case.find("failure").get("message")
        for case in ET.parse(junit).getroot().iter("testcase")
    }
    for name in figures:
        assert messages[name].endswith(f"observed {figures[name]:,.4g}"), messages[name]

    # The webhooks' summary (and New Relic's, built from it).
    told = session_summary(session)
    assert {name: told[name] for name in figures} == figures
