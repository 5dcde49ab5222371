"""The pages' scripts show the counts that say what they count: the overview's and the workers
page's keep the worker counts by role as the server wrote them (load workers with their
processes, the control worker apart), refreshed from ``GET /api/workers/``'s summary (a refresh
that broke would leave the marker below); the session page shows the requests counted apart."""

import re

import pytest
from playwright.sync_api import expect

from apps.sessions.models import EndpointStats, Target

from ..support.browser import sign_in
from ..support.sessions import finished_session
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("path", ["/", "/workers/"])
def test_the_page_refreshes_the_counts_of_load_and_control_workers(
    dashboard_web, chromium, workers, path
):
    load = [name for name in workers.hostnames if not name.startswith("control")]
    persona("vera", "viewer")
    page = sign_in(chromium, dashboard_web, "vera", "vera-pw-42")
    page.goto(dashboard_web.url(path))
    counts = page.get_by_test_id("worker-counts")
    expect(counts).to_contain_text("Load workers:")
    # Marks the server's figures, so that only the script's refresh can put them back.
    page.evaluate(
        """() => document.querySelectorAll('[data-field="load_workers"], '
             + '[data-field="load_processes"], [data-field="control_workers"]')
             .forEach((el) => (el.textContent = "?"))"""
    )
    processes = 2 * len(load)  # the workers fixture's WORKER_CONCURRENCY
    expected = rf"Load workers: {len(load)} \({processes} processes\) · control: 1"
    expect(counts).to_have_text(re.compile(expected), timeout=15_000)
    if path == "/workers/":
        expect(page.locator("#workers tbody")).to_contain_text("control")


def test_the_session_page_shows_the_requests_counted_apart(dashboard_web, chromium, workers):
    """Under the Requests tile and under the endpoint's failures: those a stop cut (no
    failures) and those that never reached the target."""
    target = Target.objects.create(name="apart", base_url="http://127.0.0.1:9")
    session = finished_session(target, status="stopped",
                               endpoints={"ping": ([5.0] * 40, {"network": 2})})  # fmt: skip
    EndpointStats.objects.filter(session=session).update(cut_by_stop=3, unreached=2)
    persona("vince", "viewer")
    page = sign_in(chromium, dashboard_web, "vince", "vince-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    expect(page.locator('[data-field="counted_apart"]')).to_have_text(
        "3 cut by the stop · 2 unreached"
    )
    expect(page.get_by_test_id("counted-apart")).to_have_text("3 cut by the stop, 2 unreached")
