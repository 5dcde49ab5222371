"""The Sessions page in a real browser: the history list, its filter form (the API's filters)
and the link that takes the rows picked to the comparison page."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from apps.sessions.models import Endpoint, EndpointStats, LoadTestSession, Target

from ..support.browser import screenshot, sign_in
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def past_run(target, name, status, day, tags=(), requests=0, failures=0):
    start = T0 + timedelta(days=day)
    session = LoadTestSession.objects.create(
        session_name=name, target=target, status=status, tags=list(tags), start_time=start,
        load_started_at=start, end_time=start + timedelta(seconds=100), concurrent_users=7,
        total_requests=requests, total_failures=failures,
    )  # fmt: skip
    if requests:
        EndpointStats.objects.create(
            session=session, name="a", method="GET", url="/a", requests=requests,
            failures=failures, histogram={"100": requests}, min_ms=1.0, max_ms=2.0, p95_ms=1.5,
        )  # fmt: skip
    return session


def test_the_history_filters_and_sends_the_picked_rows_to_compare(dashboard_web, chromium):
    persona("vic", "viewer")
    shop = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    blog = Target.objects.create(name="blog", base_url="http://127.0.0.1:5002")
    for target in (shop, blog):
        Endpoint.objects.create(target=target, name="a", url="/a")
    nightly = past_run(shop, "nightly <b>bold</b>", "completed", 0, ["nightly"], 2500, 25)
    failed = past_run(shop, "release", "failed", 2, ["release-2.4"], 100, 50)
    other = past_run(blog, "blog nightly", "completed", 5, ["nightly"])

    page = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    page.get_by_role("link", name="Sessions", exact=True).first.click()
    page.wait_for_url(dashboard_web.url("/sessions/"))
    rows = page.locator("#session-history tbody tr")
    expect(rows).to_have_count(3)
    first = page.locator(f"tr[data-session='{nightly.pk}']")
    expect(first).to_contain_text("nightly <b>bold</b>")  # shown as text
    expect(first.locator("[data-field=requests]")).to_have_text("2,500")
    expect(first).to_contain_text("25.00")  # requests/s: 2,500 in 100 s
    expect(first).to_contain_text("1.00 %")

    page.get_by_label("Tag").fill("Nightly")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Target").select_option(label="shop")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-session='{nightly.pk}']")).to_be_visible()

    page.goto(dashboard_web.url("/sessions/"))
    page.get_by_label("failed").check()
    page.get_by_label("Started from (UTC)").fill("2026-03-02")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-session='{failed.pk}']")).to_be_visible()

    page.goto(dashboard_web.url("/sessions/?started_after=yesterday"))
    expect(page.locator("#filter-errors")).to_contain_text("started_after")

    page.goto(dashboard_web.url("/sessions/"))
    compare = page.get_by_role("button", name=re.compile("Compare selected"))
    expect(compare).to_be_disabled()
    page.get_by_label(f"Compare #{other.pk}").check()
    page.get_by_label(f"Compare #{nightly.pk}").check()
    expect(compare).to_be_enabled()
    screenshot(page, "session-history")
    compare.click()
    page.wait_for_url(re.compile(r"/compare/\?ids="))
    oldest, newest = sorted([other.pk, nightly.pk])  # the oldest is the reference
    assert page.url.endswith(f"/compare/?ids={oldest},{newest}")
    page.context.close()
