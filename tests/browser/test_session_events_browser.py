"""The session page's Events panel and configuration history in a real browser: a run that
was created, started, resized, re-weighted and stopped lists each step with who and via
which surface (the page's own changes say "via page"), live and after a reload, and the
history's values read as text, not Python dicts."""

import re

import pytest
from playwright.sync_api import expect

from apps.sessions.choices import Via
from apps.sessions.lifecycle.editing import create_session
from apps.sessions.lifecycle.start import start_session
from apps.sessions.models import Endpoint, LoadTestSession, Target

from ..support.browser import screenshot, sign_in
from ..support.sessions import wait_for_status
from ..support.users import persona

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("forget_redis_sessions"),
]


def test_the_events_panel_lists_every_step_with_who_and_via(
    dashboard_web, chromium, workers, counting_server
):
    olga = persona("olga", "operator")
    target = Target.objects.create(name="events", base_url=counting_server.base_url)
    for name in ("fast", "slow"):
        Endpoint.objects.create(target=target, name=name, url=f"/{name}")
    session = LoadTestSession(session_name="watched", target=target, concurrent_users=1,
                              duration_minutes=0, request_interval_min=0.05,
                              request_interval_max=0.1)  # fmt: skip
    # Created and started by a client of the API (the in-process API client cannot run
    # beside Playwright's event loop: the services, as the API calls them).
    session = start_session(create_session(session, user=olga, via=Via.API), olga, via=Via.API)
    wait_for_status(session.pk, {"running"})

    page = sign_in(chromium, dashboard_web, "olga", "olga-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    events = page.locator("#event-list")
    expect(events.locator("li[data-kind=created]")).to_contain_text("olga via api")
    expect(events.locator("li[data-kind=started]")).to_contain_text("Start asked")
    expect(events).not_to_contain_text("No events.")

    page.locator("#users-now").fill("2")
    page.get_by_role("button", name="Apply users").click()
    resized = events.locator("li[data-kind=users_changed]")
    expect(resized).to_contain_text("Users 1 -> 2.")  # live, from the stream
    expect(resized).to_contain_text("olga via page")
    page.locator('#weights-now [data-endpoint="fast"]').fill("1")
    page.locator('#weights-now [data-endpoint="slow"]').fill("4")
    page.get_by_role("button", name="Apply weights").click()
    expect(events.locator("li[data-kind=weights_changed]")).to_contain_text("fast 1, slow 4")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_test_id("session-status")).to_have_text("stopped", timeout=30_000)
    expect(events.locator("li[data-kind=stop_requested]")).to_contain_text("olga via page")
    expect(events.locator("li[data-kind=ended]")).to_contain_text("Stopped by user")

    page.reload()  # the finished page: the same events, from the database
    for kind in ("created", "started", "load_started", "users_changed", "weights_changed",
                 "stop_requested", "ended"):  # fmt: skip
        expect(events.locator(f"li[data-kind={kind}]")).to_have_count(1)
    expect(events.locator("li[data-kind=load_started]")).to_contain_text("system via system")
    history = page.locator("tr[data-field=endpoint_weights]")
    expect(history).to_contain_text("fast 1, slow 4")
    expect(history).to_contain_text("page")
    expect(history).not_to_contain_text(re.compile(r"[{}']"))
    expect(page.locator("tr[data-field=concurrent_users]")).to_contain_text("page")
    screenshot(page, "session-events")
    page.context.close()
