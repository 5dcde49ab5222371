"""Schedules through the API and the service that fires them (no processes: the firing is
called directly here; tests/integration/test_schedule_runs.py has beat fire them for real)."""

from datetime import UTC, datetime, time

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django_celery_beat.models import PeriodicTask

from apps.sessions.lifecycle.schedules import RUN_SCHEDULE_TASK, run_schedule, save_schedule
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import LoadTestSession, Schedule

from ..support.users import client_for, persona

pytestmark = pytest.mark.django_db

MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def template(api) -> int:
    response = api.post(
        "/api/sessions/",
        {"session_name": "nightly", "concurrent_users": 2, "duration_minutes": "1"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def create(api, template_id, **fields):
    body = {"name": "every minute", "template": template_id, "interval_seconds": 60, **fields}
    return api.post("/api/schedules/", body, format="json")


def test_an_operator_creates_a_schedule_and_beat_gets_its_periodic_task(api, operator, template):
    response = create(api, template, window_days=[0, 1, 2, 3, 4], window_start="09:00",
                      window_end="18:00", time_zone="Europe/Paris")  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["created_by"] == operator.username
    task = Schedule.objects.get(pk=body["id"]).periodic_task
    assert task.task == "apps.sessions.tasks.run_schedule"
    assert task.args == f"[{body['id']}]"
    assert task.queue == "control"
    assert (task.interval.every, task.interval.period) == (60, "seconds")
    assert task.expire_seconds == 60
    assert task.enabled

    changed = api.patch(
        f"/api/schedules/{body['id']}/",
        {"interval_seconds": None, "crontab": "0 9 * * 1-5", "enabled": False},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    task.refresh_from_db()
    assert task.interval is None
    assert (task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == (
        "9",
        "1-5",
        "Europe/Paris",
    )
    assert not task.enabled

    assert api.delete(f"/api/schedules/{body['id']}/").status_code == 204
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert LoadTestSession.objects.filter(pk=template).exists()


def test_a_viewer_reads_but_cannot_create_or_delete(api, viewer_api, template):
    schedule_id = create(api, template).json()["id"]
    assert viewer_api.get("/api/schedules/").json()["count"] == 1
    assert create(viewer_api, template, name="mine").status_code == 403
    assert viewer_api.patch(f"/api/schedules/{schedule_id}/", {"enabled": False}).status_code == 403
    assert viewer_api.delete(f"/api/schedules/{schedule_id}/").status_code == 403


def test_the_service_refuses_a_viewer_too(viewer, template):
    schedule = Schedule(name="x", template_id=template, interval_seconds=5)
    with pytest.raises(PermissionDenied):
        save_schedule(schedule, user=viewer)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval_seconds": None}, "interval_seconds"),  # neither
        ({"crontab": "* * * * *"}, "interval_seconds"),  # both
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": -5}, "interval_seconds"),
        ({"interval_seconds": 10**12}, "interval_seconds"),
        ({"interval_seconds": "NaN"}, "interval_seconds"),
        ({"interval_seconds": None, "crontab": "99 * * * *"}, "crontab"),
        ({"interval_seconds": None, "crontab": "every day"}, "crontab"),
        ({"interval_seconds": None, "crontab": "* " * 200_000}, "crontab"),
        ({"window_days": [7]}, "window_days"),
        ({"window_days": [1, 1]}, "window_days"),
        ({"window_days": "weekdays"}, "window_days"),
        ({"window_days": [True]}, "window_days"),
        ({"window_start": "25:00", "window_end": "18:00"}, "window_start"),
        ({"window_start": "09:00"}, "window_end"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": "é" * 10_000}, "time_zone"),
        ({"run_duration_minutes": "NaN"}, "run_duration_minutes"),
        ({"run_duration_minutes": "-1"}, "run_duration_minutes"),
        ({"run_duration_minutes": "1e30"}, "run_duration_minutes"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "x" * 1_000_000}, "name"),
        ({"template": 10**9}, "template"),
        ({"template": 1.5}, "template"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, template, fields, field):
    response = create(api, template, **fields)
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()
    assert not PeriodicTask.objects.filter(task=RUN_SCHEDULE_TASK).exists()


def test_a_template_in_use_is_not_deleted(api, template):
    create(api, template)
    response = api.delete(f"/api/sessions/{template}/")
    assert response.status_code == 409
    assert "schedule" in response.json()["detail"]


def make_schedule(operator, template, **fields) -> Schedule:
    schedule = Schedule(name="s", template_id=template, interval_seconds=5, **fields)
    return save_schedule(schedule, user=operator)


def test_a_firing_while_the_previous_run_is_pending_or_active_is_skipped_and_recorded(
    operator, template
):
    schedule = make_schedule(operator, template)
    busy = LoadTestSession.objects.get(pk=template)
    for status in ("pending", "running", "stopping"):
        LoadTestSession.objects.filter(pk=busy.pk).update(status=status, schedule=schedule)
        assert run_schedule(schedule.pk, now=MONDAY_NOON) is None
    schedule.refresh_from_db()
    assert schedule.skipped_runs == 3
    assert schedule.last_skipped_at is not None
    assert f"session {busy.pk}" in schedule.last_message
    assert LoadTestSession.objects.count() == 1  # nothing new was created


def test_outside_its_window_a_schedule_starts_nothing(operator, template):
    schedule = make_schedule(
        operator, template, window_days=[5, 6], window_start=time(9), window_end=time(18)
    )
    assert run_schedule(schedule.pk, now=MONDAY_NOON) is None
    schedule.refresh_from_db()
    assert schedule.skipped_runs == 0
    assert not schedule.runs.exists()


def test_a_disabled_schedule_starts_nothing(operator, template):
    schedule = make_schedule(operator, template, enabled=False)
    assert run_schedule(schedule.pk, now=MONDAY_NOON) is None
    assert not schedule.runs.exists()


def test_the_owner_s_permission_is_checked_at_each_run(operator, template):
    schedule = make_schedule(operator, template)
    demoted = persona("dora", "viewer")
    Schedule.objects.filter(pk=schedule.pk).update(created_by=demoted)
    assert run_schedule(schedule.pk, now=MONDAY_NOON) is None
    schedule.refresh_from_db()
    assert "does not allow you to create sessions" in schedule.last_message
    assert not schedule.runs.exists()


def test_a_run_is_cut_to_end_with_its_window(operator, template, redis_client):
    # Monday 12:00 UTC; the window closes at 12:30: a 60-minute run gets 30.
    schedule = make_schedule(
        operator,
        template,
        run_duration_minutes=60,
        window_start=time(11),
        window_end=time(12, 30),
    )
    LoadTestSession.objects.filter(pk=template)  # the template itself is not a run
    run = run_schedule(schedule.pk, now=MONDAY_NOON)
    assert run is not None
    assert run.schedule_id == schedule.pk
    assert run.duration_minutes == 30
    assert run.status == "starting"
    assert run.started_by == operator
    stop_session(run)
    schedule.refresh_from_db()
    assert schedule.last_run_at == MONDAY_NOON
    assert client_for(operator).get(f"/api/schedules/{schedule.pk}/").json()["runs"] == [run.pk]


def test_the_dashboard_lists_schedules_with_controls_for_operators_only(operator, viewer, template):
    schedule = make_schedule(operator, template)
    Schedule.objects.filter(pk=schedule.pk).update(skipped_runs=7)
    for user, controls in ((operator, True), (viewer, False)):
        browser = Client()
        browser.force_login(user)
        page = browser.get("/schedules/").content.decode()
        assert "every 5 s" in page and f"#{template} nightly" in page and ">7<" in page
        assert ("data-toggle" in page) is controls
        assert ("data-delete" in page) is controls
        assert 'href="/schedules/"' in page  # the navigation links the page
    assert Client().get("/schedules/").status_code == 302  # to the sign-in


def test_a_run_that_cannot_start_is_withdrawn_and_the_reason_kept(
    operator, template, settings, redis_client
):
    settings.MAX_TOTAL_USERS = 1  # the template asks for 2
    schedule = make_schedule(operator, template)
    assert run_schedule(schedule.pk, now=MONDAY_NOON) is None
    schedule.refresh_from_db()
    assert "A run could not start" in schedule.last_message
    assert "MAX_TOTAL_USERS" in schedule.last_message
    assert not schedule.runs.exists()  # nothing pending holds off the next firing


def test_the_admin_creates_a_schedule_through_the_services(administrator, template):
    administrator.is_staff = True  # as `manage.py role ... admin` makes an admin
    administrator.save()
    browser = Client()
    browser.force_login(administrator)
    form = {
        "name": "from the admin",
        "template": template,
        "interval_seconds": "",
        "crontab": "*/5 * * * *",
        "window_days": "[]",
        "time_zone": "UTC",
        "enabled": "on",
    }
    answer = browser.post("/admin/loadtests/schedule/add/", form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    schedule = Schedule.objects.get(name="from the admin")
    assert schedule.created_by == administrator
    assert schedule.periodic_task.crontab.minute == "*/5"

    refused = browser.post("/admin/loadtests/schedule/add/", {**form, "name": "bad", "crontab": ""})
    assert refused.status_code == 200
    assert "exactly one" in refused.content.decode()
    assert not Schedule.objects.filter(name="bad").exists()
