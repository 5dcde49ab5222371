"""One run, one set of figures: after a real run (real workers, real HTTP) whose users and
weights were changed while it ran and which was then stopped, its request rate, error rate
and p50/p95/p99 read the same on every surface that shows them: the session's API resource,
the sessions list (API and page), the live statistics behind the session page, the report,
the comparison, the thresholds' verdicts, /metrics, the CLI summary, JUnit and the webhooks'
summary. Each surface is read as a person or a program reads it, not through the function
that computes them. Each step of the run is an event with who and through which surface,
the run's per-second series has no gap, and its report says what ran: the configuration at
the start and at the end, and each change with who made it."""

import json
import re
import time
import xml.etree.ElementTree as ET

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from apps.sessions.cli.reports import summary, write_junit
from apps.sessions.integrations.webhooks import session_summary
from apps.sessions.models import LoadTestSession

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = "figures-test-token-0123456789"
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
# Each fails at the end (none aborts), so that JUnit says what it observed.
THRESHOLDS = [f"{name} < 0.001" for name in PERCENTILES] + ["rps < 0.001", "error_rate < 0"]


def finished_run(api, counting_server) -> LoadTestSession:
    """Two endpoints of different speeds and one failing, 4 users for a while, then 6, then
    other weights, then a stop."""
    counting_server.delays = {"/slow": 0.03}
    counting_server.statuses = {"/broken": 500}
    session_id = start_load(
        api,
        counting_server,
        endpoints=(("fast", "/fast", 4.0), ("slow", "/slow", 2.0), ("broken", "/broken", 1.0)),
        concurrent_users=4,
        duration_minutes="0",
        thresholds=THRESHOLDS,
        **BRISK,
    )
    url = f"/api/sessions/{session_id}/"
    wait_until(lambda: LoadTestSession.objects.get(pk=session_id).total_requests > 10, 30)
    changed = api.patch(url, {"concurrent_users": 6}, format="json")
    assert changed.status_code == 200, changed.json()
    time.sleep(1.5)
    weights = {"fast": 1.0, "slow": 4.0, "broken": 1.0}
    changed = api.patch(url, {"endpoint_weights": weights}, format="json")
    assert changed.status_code == 200, changed.json()
    time.sleep(1.5)
    assert api.post(f"{url}stop/").status_code == 202
    session = wait_for_status(session_id, timeout_s=60)
    assert session.status == "stopped", session.end_detail
    # The final judgement comes just after the status (the same tick): as the CLI does,
    # read the figures once they are final.
    session = wait_until(
        lambda: LoadTestSession.objects.filter(
            pk=session_id, results_final_at__isnull=False
        ).first(),
        timeout_s=20,
    )
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
    what_ran = re.search(r'data-testid="what-ran">(.*?)</p>', detail, re.S).group(1)
    assert re.search(r"Users: 4 at the start\s*→ 6 at the end", what_ran), what_ran
    assert "2 changes while running" in what_ran

    # The report (its data, embedded as JSON in the downloaded file).
    report = api.get(f"/api/sessions/{session.pk}/report/").content.decode()
    data = json.loads(re.search(r'id="report-data"[^>]*>(.*?)</script>', report, re.S).group(1))
    assert {name: data["whole"][name] for name in figures} == figures

    # What ran, labelled: the users at the start and end, the configuration both ways, and
    # each change with who made it and through which surface.
    assert data["session"]["users"]["at_start"] == 4 and data["session"]["users"]["at_end"] == 6
    assert 0 < data["session"]["users"]["mean"] < 6 and data["session"]["users"]["max"] == 6
    config = {row["name"]: row for row in data["configuration"]["session"]}
    assert (config["concurrent_users"]["at_start"], config["concurrent_users"]["at_end"]) == (
        "4", "6",
    )  # fmt: skip
    assert config["endpoint_weights"]["changed"] and not config["session_name"]["changed"]
    changed = [(row["field"], row["by"], row["via"]) for row in data["changes"]]
    assert changed == [("concurrent_users", "olivia", "api"), ("endpoint_weights", "olivia", "api")]
    assert "At the start" in report and "At the end" in report
    assert "Endpoints as run (at the start)" in report
    assert "fast 1, slow 4, broken 1" in report  # the weights as a person reads them

    # An event for each step of the run, in order, with who and through which surface
    # (the API's event log, read as a client reads it, oldest first here).
    logged = api.get(f"/api/sessions/{session.pk}/event-log/").json()["results"][::-1]
    lifecycle = {"created", "started", "load_started", "users_changed", "weights_changed",
                 "stop_requested", "ended"}  # fmt: skip
    steps = [(e["kind"], e["actor"], e["via"]) for e in logged if e["kind"] in lifecycle]
    assert steps == [
        ("created", "olivia", "api"),
        ("started", "olivia", "api"),
        ("load_started", "system", "system"),
        ("users_changed", "olivia", "api"),
        ("weights_changed", "olivia", "api"),
        ("stop_requested", "olivia", "api"),
        ("ended", "olivia", "api"),
    ], steps
    assert [e["kind"] for e in data["events"] if e["kind"] in lifecycle] == [s[0] for s in steps]

    # The per-second series has no gap: every second with requests has its users and its
    # latency (p50 needs 2 answers in the window, which a second of this load has).
    points = list(session.timeseries.filter(requests__gt=0).order_by("timestamp"))
    assert len(points) >= 4
    gaps = [p.timestamp for p in points if p.users is None or p.p50_ms is None]
    seen = [(p.timestamp.strftime("%S"), p.requests, p.users, p.p50_ms) for p in points]
    assert gaps == [], (session.load_started_at, session.end_time, seen)
    chart = api.get(f"/api/sessions/{session.pk}/chart/").json()
    busy = [i for i, rps in enumerate(chart["rps"]) if rps]
    assert [chart["users"][i] for i in busy if chart["users"][i] is None] == []
    assert [chart["p50_ms"][i] for i in busy if chart["p50_ms"][i] is None] == []

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

    # JUnit: each failed threshold's message says what was observed, the figure itself
    # with its unit.
    junit = tmp_path / "junit.xml"
    write_junit(junit, session)
    messages = {
        case.get("name").split(" ")[0]: case.find("failure").get("message")
        for case in ET.parse(junit).getroot().iter("testcase")
    }
    shown = {
        "rps": f"{figures['rps']:,g} requests/s",
        "error_rate": f"{round(figures['error_rate'] * 100, 4):,g} %",
        **{name: f"{figures[name]:,g} ms" for name in PERCENTILES},
    }
    for name in figures:
        assert messages[name].endswith(f"observed {shown[name]}"), messages[name]

    # The webhooks' summary (and New Relic's, built from it).
    told = session_summary(session)
    assert {name: told[name] for name in figures} == figures
