"""The admin as the tests use it: the login page and its static files, fetched from a real
web process as a browser would (with DEBUG=False it answers 200 only when the collected static
files and their manifest are there; without them, Django answers 500), a staff user's browser
session, and the session list's actions."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import requests
from django.test import Client
from django.urls import reverse

CHANGELIST = "admin:loadtests_loadtestsession_changelist"


def logged_in(user, *, staff: bool = True) -> Client:
    """A browser session of ``user`` in the admin (staff, as the admin requires)."""
    if staff and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def run_action(client, action: str, *sessions):
    """Run a session list action (start, stop, delete...) on ``sessions``, as its form posts."""
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [session.pk for session in sessions], "post": "yes"},
        follow=True,
    )


def assert_admin_login_served(
    base_url: str, running: Callable[[], bool], log: Callable[[], str], timeout_s: float = 60.0
) -> None:
    """Wait for the web process at ``base_url`` to answer, then check the login page and
    every stylesheet it links; ``running`` and ``log`` explain a process that died."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert running(), log()
        try:
            login = requests.get(f"{base_url}/admin/login/", timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"no answer within {timeout_s} s:\n{log()}"
            time.sleep(0.3)
    assert login.status_code == 200, login.text[:500]
    # Hashed names (base.<hash>.css) come from the manifest that collectstatic wrote.
    stylesheets = re.findall(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', login.text)
    assert stylesheets, login.text[:1000]
    for stylesheet in stylesheets:
        served = requests.get(base_url + stylesheet, timeout=5)
        assert served.status_code == 200, stylesheet
        assert served.headers["Content-Type"].startswith("text/css")


def inline_management(page) -> dict[str, str]:
    """The inline formsets' management fields as the change page rendered them."""
    data = {}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"):
            data[f"{management.prefix}-{name}"] = str(management[name].value())
        for form in formset.formset.initial_forms:
            data[f"{form.prefix}-id"] = str(form.instance.pk)
            data[f"{form.prefix}-session"] = str(form.instance.session_id)
    return data
