"""The overview's and the workers page's scripts keep the worker counts by role as the server
wrote them: load workers with their processes, and the control worker apart, refreshed from
``GET /api/workers/``'s summary (a refresh that broke would leave the marker below)."""

import re

import pytest
from playwright.sync_api import expect

from ..support.browser import sign_in
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
