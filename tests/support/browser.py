"""A real headless Chromium (Playwright) on the Procfile's web process, for the dashboard.

Chromium is Debian's package (``CHROMIUM_PATH``, default /usr/bin/chromium), never a
browser Playwright downloads. Without it the browser tests skip with the reason, except
under CI=true, where a missing browser fails the run (.ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from .web import WebServer

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Screenshots of the pages, kept after the run for people to look at.
ARTIFACTS_DIR = Path(os.environ.get("TEST_ARTIFACTS_DIR", settings.BASE_DIR / "data" / "artifacts"))
TIMEOUT_MS = 15_000


def chromium_or_skip() -> str:
    path = shutil.which(CHROMIUM_PATH) or (CHROMIUM_PATH if Path(CHROMIUM_PATH).exists() else "")
    if path:
        return path
    reason = f"No Chromium at CHROMIUM_PATH={CHROMIUM_PATH} (apt-get install chromium)."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def sign_in(chromium, server: WebServer, username: str, password: str):
    """A new browser page signed in through the login form."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(server.url("/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url("/"))
    return page


def screenshot(page, name: str) -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
