"""The session page shows which response checks failed, per endpoint, in a real browser on
the real web process; a session's checks are those its shards ran (real workers, a real
server answering a wrong 200)."""

import json

import pytest
from playwright.sync_api import expect

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


def test_the_endpoint_table_names_the_failed_checks(
    dashboard_web, chromium, workers, counting_server
):
    persona("vic", "viewer")
    counting_server.bodies["/wrong"] = json.dumps({"status": "error"})
    target = Target.objects.create(name="checked", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="right", url="/right",
                            checks=[{"type": "body_contains", "value": "ok"}])  # fmt: skip
    Endpoint.objects.create(
        target=target, name="wrong", url="/wrong",
        checks=[{"name": "says ok", "type": "json_path_equals", "path": "$.status",
                 "value": "ok"}],
    )  # fmt: skip
    session = LoadTestSession.objects.create(
        session_name="checked", target=target, concurrent_users=2, duration_minutes="0.05",
        request_interval_min=0.05, request_interval_max=0.1, max_errors_per_minute=0,
    )  # fmt: skip
    start_session(session)
    finished = wait_for_status(session.pk, timeout_s=60)
    assert finished.status == "completed", finished.end_detail

    page = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    rows = page.get_by_test_id("endpoint-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    wrong = finished.endpoint_stats.get(name="wrong")
    assert wrong.check_failures == {"says ok": wrong.requests} and wrong.requests > 0
    expect(rows.filter(has_text="wrong").get_by_test_id("check-failures")).to_have_text(
        f"checks failed: says ok {wrong.requests:,}"
    )
    expect(rows.filter(has_text="right").get_by_test_id("check-failures")).to_have_count(0)
    screenshot(page, "session-check-failures")
