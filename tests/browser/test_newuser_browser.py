"""What a new user saw on a finished session's page (issue 14's new-user pass), in a real
browser on the real web process: a run without failures says so in its failures chart."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.sessions.choices import SessionStatus
from apps.sessions.models import Endpoint, LoadTestSession, Target, TimeSeriesPoint

from ..support.browser import screenshot, sign_in
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished_session(name: str, seconds: int) -> LoadTestSession:
    """A completed session with ``seconds`` one-second points of requests and no failure."""
    target = Target.objects.create(name=f"t-{name}", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    ended = timezone.now().replace(microsecond=0)
    started = ended - timedelta(seconds=seconds)
    session = LoadTestSession.objects.create(
        session_name=name,
        target=target,
        status=SessionStatus.COMPLETED,
        start_time=started,
        load_started_at=started,
        end_time=ended,
        total_requests=10 * seconds,
    )
    TimeSeriesPoint.objects.bulk_create(
        TimeSeriesPoint(
            session=session,
            timestamp=started + timedelta(seconds=second),
            requests=10,
            failures=0,
            latency_sum_ms=50.0,
            p50_ms=5.0,
            p95_ms=9.0,
            p99_ms=12.0,
        )
        for second in range(seconds)
    )
    return session


def test_a_finished_run_without_failures_says_no_failures_in_its_failures_chart(
    dashboard_web, chromium
):
    persona("vic", "viewer")
    session = finished_session("calm", 20)
    page = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    expect(page.get_by_test_id("chart-rps").locator("canvas").first).to_be_visible()
    failures_chart = page.locator('[data-chart="errors"]')
    expect(failures_chart).to_have_text("No failures.")
    screenshot(page, "newuser-finished-without-failures")
