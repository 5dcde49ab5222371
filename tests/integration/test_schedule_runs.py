"""Schedules fired by the real beat (django-celery-beat's DatabaseScheduler), run by the real
control and load workers against a CountingServer: on time, never overlapping themselves."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from apps.sessions.lifecycle.schedules import SCHEDULE_BUSY_STATUSES
from apps.sessions.models import LoadTestSession, Schedule

from ..support.sessions import BRISK, create_session, make_target, wait_for_status
from ..support.waiting import assert_stays, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def schedule(api, template_id, name, **fields) -> int:
    body = {"name": name, "template": template_id, **fields}
    response = api.post("/api/schedules/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def template(api, server) -> int:
    return create_session(api, make_target(api, server), concurrent_users=2, **BRISK)


def busy_runs(schedule_id: int) -> int:
    return LoadTestSession.objects.filter(
        schedule_id=schedule_id, status__in=SCHEDULE_BUSY_STATUSES
    ).count()


def test_an_interval_schedule_fires_on_time_and_its_runs_send_load(
    api, workers, counting_server, forget_redis_sessions
):
    created = time.monotonic()
    schedule_id = schedule(
        api,
        template(api, counting_server),
        "brisk",
        interval_seconds=3,
        run_duration_minutes="0.02",
    )
    # Beat sees a new PeriodicTask within its loop (5 s), then fires after the interval.
    first = wait_until(
        lambda: Schedule.objects.get(pk=schedule_id).runs.order_by("pk").first(),
        timeout_s=30,
        what="A first run",
    )
    assert time.monotonic() - created < 30
    finished = wait_until(
        lambda: LoadTestSession.objects.get(pk=first.pk).end_reason == "completed",
        timeout_s=40,
        what="The first run completing its 1.2 s",
    )
    assert finished
    first.refresh_from_db()
    assert first.total_requests > 0
    assert first.started_by.username == "olivia"  # the owner's run, with the owner's rights
    wait_for_status(first.pk)  # its end reason is known at the stop, its end event at the end
    who = {
        kind: (actor, via) for kind, actor, via in first.events.values_list("kind", "actor", "via")
    }
    assert who["created"] == who["started"] == ("olivia", "schedule")
    assert who["ended"] == ("the duration", "system")
    assert first.session_name.startswith("brisk ")
    # A second firing follows the first by about the interval.
    wait_until(
        lambda: Schedule.objects.get(pk=schedule_id).runs.count() >= 2,
        timeout_s=20,
        what="A second run",
    )
    starts = list(
        Schedule.objects.get(pk=schedule_id)
        .runs.order_by("pk")
        .values_list("created_at", flat=True)
    )
    assert timedelta(seconds=2) <= starts[1] - starts[0] <= timedelta(seconds=15)
    assert api.delete(f"/api/schedules/{schedule_id}/").status_code == 204
    wait_until(lambda: busy_runs(schedule_id) == 0, timeout_s=30, what="Runs ended")
    assert counting_server.total >= first.total_requests


def test_a_run_longer_than_the_interval_is_never_overlapped_and_skips_are_recorded(
    api, workers, counting_server, forget_redis_sessions
):
    schedule_id = schedule(
        api, template(api, counting_server), "long", interval_seconds=1, run_duration_minutes="1"
    )
    first = wait_until(
        lambda: Schedule.objects.get(pk=schedule_id).runs.first(), timeout_s=30, what="A run"
    )
    # A firing every second meanwhile.
    assert_stays(lambda: busy_runs(schedule_id) <= 1, 8.0, "One run at a time", interval_s=0.2)
    recorded = Schedule.objects.get(pk=schedule_id)
    assert recorded.runs.count() == 1
    assert recorded.skipped_runs >= 3
    assert f"session {first.pk}" in recorded.last_message
    shown = api.get(f"/api/schedules/{schedule_id}/").json()
    assert shown["skipped_runs"] >= 3 and shown["last_skipped_at"]

    # Once the run ends, the next firing starts the next one.
    assert api.post(f"/api/sessions/{first.pk}/stop/").status_code == 202
    wait_until(
        lambda: Schedule.objects.get(pk=schedule_id).runs.count() >= 2,
        timeout_s=30,
        what="The next run after the stop",
    )
    assert api.patch(f"/api/schedules/{schedule_id}/", {"enabled": False}).status_code == 200
    for run in Schedule.objects.get(pk=schedule_id).runs.filter(status__in=SCHEDULE_BUSY_STATUSES):
        api.post(f"/api/sessions/{run.pk}/stop/")
    wait_until(lambda: busy_runs(schedule_id) == 0, timeout_s=30, what="Runs ended")


def test_a_window_elsewhere_in_the_week_never_starts_while_an_open_one_does(
    api, workers, counting_server, forget_redis_sessions
):
    today = datetime.now(UTC).weekday()
    template_id = template(api, counting_server)
    closed = schedule(api, template_id, "closed", interval_seconds=1, run_duration_minutes="0.02",
                      window_days=[(today + 2) % 7, (today + 3) % 7],
                      window_start="00:00", window_end="23:59", time_zone="UTC")  # fmt: skip
    opened = schedule(api, template_id, "open", interval_seconds=1, run_duration_minutes="0.02")
    wait_until(
        lambda: Schedule.objects.get(pk=opened).runs.exists(), timeout_s=30, what="The open run"
    )
    wait_until(  # more firings of both
        lambda: Schedule.objects.get(pk=opened).runs.count() >= 2, timeout_s=30, what="More runs"
    )
    assert not Schedule.objects.get(pk=closed).runs.exists()
    for schedule_id in (closed, opened):
        assert api.patch(f"/api/schedules/{schedule_id}/", {"enabled": False}).status_code == 200
    wait_until(lambda: busy_runs(opened) == 0, timeout_s=30, what="Runs ended")
