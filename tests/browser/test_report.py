"""The session report: one self-contained HTML file from the API, the CLI (``run --report``,
``report ID``) and the session page, which opens offline in a real browser with its charts
drawn, holds the run's totals, and carries no secret and no live markup from user input."""

import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import (
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    Target,
    TimeSeriesPoint,
)
from apps.sessions.results.report import write_report
from apps.workers.histogram import bucket_index

from ..support import browser
from ..support.cli import loadtest, write_config

SECRET_HEADER = "s3cret-header-value-42"
SECRET_QUERY = "q-token-value-77"
SECRET_BODY = "body-password-99"
HOSTILE_NAME = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


def offline_page(chromium, path):
    """A page that may read ``path`` (file://) and nothing else: every other request aborts,
    and is recorded, as is every console error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(browser.TIMEOUT_MS)
    blocked: list[str] = []

    def route(request_route):
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.goto(path.as_uri())
    return page, blocked, errors


def charts_drawn(page) -> dict:
    """For each chart: its canvas has pixels that are not blank, and uPlot built a path for
    each series that has data."""
    return page.evaluate(
        """() => Object.fromEntries(Object.entries(window.reportCharts || {}).map(([id, u]) => {
            const canvas = u.ctx.canvas;
            const pixels = u.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
            const hasData = (s, i) => u.data[i + 1].some((v) => v != null);
            const withData = u.series.slice(1).filter(hasData);
            return [id, {painted, series: withData.length,
                         paths: withData.filter((s) => s._paths && s._paths.stroke).length}];
        }))"""
    )


def histogram(latencies_ms):
    counts = {}
    for ms in latencies_ms:
        counts[str(bucket_index(int(ms * 1000)))] = (
            counts.get(str(bucket_index(int(ms * 1000))), 0) + 1
        )
    return counts


@pytest.fixture
def finished(db):
    """A completed run whose endpoint has credentials in its header, query and body, which the
    target echoed into an error sample; named and tagged by a hostile user."""
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    endpoint = Endpoint.objects.create(
        target=target, name="login", method="POST", url=f"/login?api_key={SECRET_QUERY}",
        headers={"X-Custom-Auth": SECRET_HEADER}, body=f'{{"password": "{SECRET_BODY}"}}',
    )  # fmt: skip
    session = LoadTestSession.objects.create(
        session_name=HOSTILE_NAME, target=target, tags=["nightly", "xss-check"],
        thresholds=["p95_ms < 500", "error_rate < 0.01"],
    )  # fmt: skip
    plan = build_plan(session)
    start = timezone.now() - timedelta(minutes=1)
    LoadTestSession.objects.filter(pk=session.pk).update(
        plan=plan.to_json(), status="completed", start_time=start, load_started_at=start,
        end_time=start + timedelta(seconds=10), total_requests=100, total_failures=4,
        threshold_results=[
            {"expression": "p95_ms < 500", "scope": None, "metric": "p95_ms", "observed": 42.0,
             "passed": True, "note": "", "aborted": False, "final": True},
            {"expression": "error_rate < 0.01", "scope": None, "metric": "error_rate",
             "observed": 0.04, "passed": False, "note": "", "aborted": False, "final": True},
        ],
    )  # fmt: skip
    latencies = [10.0] * 60 + [40.0] * 35 + [300.0] * 5
    EndpointStats.objects.create(
        session=session, endpoint=endpoint, name="login", method="POST",
        url=f"http://127.0.0.1:5001/login?api_key={SECRET_QUERY}", requests=100, failures=4,
        failures_by_class={"http_5xx": 4}, histogram=histogram(latencies), min_ms=10.0,
        max_ms=300.0, mean_ms=33.0, p50_ms=10.0, p95_ms=42.0, p99_ms=300.0,
    )  # fmt: skip
    for second in range(10):
        TimeSeriesPoint.objects.create(
            session=session, timestamp=start + timedelta(seconds=second), requests=10,
            failures=second % 3 == 0, latency_sum_ms=330.0, p50_ms=10.0, p95_ms=42.0,
            p99_ms=300.0, users=4,
        )  # fmt: skip
    ErrorSample.objects.create(
        session=session, at=start, endpoint="login", failure_class="http_5xx", status=500,
        message=f"HTTP 500: X-Custom-Auth: {SECRET_HEADER} password={SECRET_BODY} <b>boom</b>",
        hostname="worker-a",
    )  # fmt: skip
    session.refresh_from_db()
    return session


@pytest.mark.django_db
def test_api_serves_the_report_as_an_ascii_named_attachment(viewer_api, finished):
    response = viewer_api.get(f"/api/sessions/{finished.pk}/report/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.isascii() and re.fullmatch(
        rf'attachment; filename="session-{finished.pk}-[a-z0-9-]+\.html"', disposition
    ), disposition
    html = response.content.decode()
    for part in ("Summary", "Thresholds", "Charts", "Endpoints", "Errors", "Configuration",
                 "Environment", "worker-a", "X-Custom-Auth: [redacted]", "leeoniya/uPlot",
                 "Permission is hereby granted"):  # fmt: skip
        assert part in html, part
    unauthenticated = viewer_api.__class__().get(f"/api/sessions/{finished.pk}/report/")
    assert unauthenticated.status_code in (401, 403)
    assert viewer_api.get("/api/sessions/999999/report/").status_code == 404


@pytest.mark.django_db
def test_the_report_holds_no_secret_and_escapes_user_input(viewer_api, finished):
    html = viewer_api.get(f"/api/sessions/{finished.pk}/report/").content.decode()
    for secret in (SECRET_HEADER, SECRET_QUERY, SECRET_BODY):
        assert secret not in html, secret
    assert "[redacted]" in html
    # The hostile name appears only escaped: as text in the HTML, as \u003C in the JSON.
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "\\u003C/script\\u003E\\u003Cscript\\u003Ewindow.pwned" in html
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    # Self-contained: nothing is loaded from anywhere.
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)


@pytest.mark.django_db(transaction=True)
def test_the_report_opens_offline_with_its_charts_drawn_and_markup_inert(
    chromium, finished, tmp_path
):
    # Rendered as the API renders it (the in-process API client cannot run beside
    # Playwright's event loop; the API's answer has tests of its own above).
    path = tmp_path / "report.html"
    write_report(path, finished)
    page, blocked, errors = offline_page(chromium, path)
    page.wait_for_function("Object.keys(window.reportCharts || {}).length === 3")
    drawn = charts_drawn(page)
    assert set(drawn) == {"chart-throughput", "chart-latency", "chart-distribution"}
    for name, chart in drawn.items():
        assert chart["painted"] > 1000, (name, chart)
        assert chart["series"] >= 1 and chart["paths"] == chart["series"], (name, chart)
    totals = page.locator("#endpoint-table tfoot")
    assert totals.locator("[data-field=total-requests]").inner_text() == "100"
    assert totals.locator("[data-field=total-failures]").inner_text() == "4"
    assert "FAIL" in page.locator("#threshold-table").inner_text()
    assert page.evaluate("window.pwned") is None  # the name's script and onerror never ran
    assert HOSTILE_NAME in page.locator("h1").inner_text()
    assert blocked == [] and errors == [], (blocked, errors)
    browser.screenshot(page, "session-report")
    page.context.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_cli_run_writes_a_report_of_the_real_run_and_report_command_rewrites_it(
    api, workers, counting_server, forget_redis_sessions, tmp_path, chromium
):
    target = Target.objects.create(name="counting", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping", weight=3)
    Endpoint.objects.create(target=target, name="broken", url="/broken", weight=1)
    counting_server.statuses["/broken"] = 500
    config = write_config(tmp_path, counting_server.base_url, tags=["ci", "smoke"])
    out = tmp_path / "out.html"
    bad = loadtest(workers, "run", "--config", str(config), "--report", str(tmp_path / "r.pdf"))
    assert bad.returncode == 2 and "must end in .html" in bad.stderr
    assert counting_server.total == 0  # refused before any load

    result = loadtest(workers, "run", "--config", str(config), "--report", str(out), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    session = LoadTestSession.objects.get()
    assert session.tags == ["ci", "smoke"]
    total = counting_server.total
    assert session.total_requests == total > 10

    page, blocked, errors = offline_page(chromium, out)
    page.wait_for_function("Object.keys(window.reportCharts || {}).length === 3")
    assert all(chart["painted"] > 1000 and chart["paths"] == chart["series"] >= 1
               for chart in charts_drawn(page).values()), charts_drawn(page)  # fmt: skip
    number = lambda text: int(re.sub(r"\D", "", text))  # noqa: E731
    totals = page.locator("#endpoint-table tfoot")
    assert number(totals.locator("[data-field=total-requests]").inner_text()) == total
    assert number(totals.locator("[data-field=total-failures]").inner_text()) == (
        counting_server.count("/broken")
    )
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()

    again = tmp_path / "again.html"
    rewritten = loadtest(workers, "report", str(session.pk), "--output", str(again))
    assert rewritten.returncode == 0, rewritten.stderr
    assert f"#{session.pk} ci smoke" in again.read_text()
    missing = loadtest(workers, "report", "999999", "--output", str(again))
    assert missing.returncode == 2 and "No session 999999" in missing.stderr
    assert os.path.getsize(again) > 50_000  # uPlot is inside
