"""The browser tier's fixtures: one Chromium and one web process per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import expect

from ..support.browser import TIMEOUT_MS, chromium_or_skip
from ..support.web import collect_static, procfile_web
from ..support.workers import database_url_for_workers

# Web-first assertions wait as long as the pages' own actions (Playwright's default is 5 s):
# the suite runs in parallel on two shared cores, where a page's script can take longer to
# answer a click, and a generous bound fails only what is really broken.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def dashboard_web(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """The web process on the test database, its static files collected (DEBUG is off)."""
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    data_dir = tmp_path_factory.mktemp("dashboard-web-data")
    collect_static(data_dir)
    env = {
        "ALLOWED_TARGET_HOSTS": ",".join(settings.ALLOWED_TARGET_HOSTS),
        "API_USER_RATE": "100000/minute",
    }
    with procfile_web(database_url, redis_url, data_dir, data_dir / "web.log", **env) as server:
        yield server
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """One headless Chromium for the module's tests."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the tests' own database
    # reads are synchronous and safe, which Django cannot tell. Only for these tests: a
    # process started later (manage.py check --deploy) must not inherit it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
