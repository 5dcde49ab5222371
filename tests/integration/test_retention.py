"""Bounded database growth besides the time series: SESSION_RETENTION_DAYS purges finished
sessions with their rows, events and error samples stay capped per session, and the periodic
task that does it runs on the real control worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.sessions.lifecycle.editing import purge_expired_sessions
from apps.sessions.models import (
    AuditEntry,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)
from apps.sessions.results.records import record_event
from apps.sessions.results.sync import store_events
from apps.workers.control import SessionKeys
from apps.workers.vocabulary import ERROR_SAMPLE
from loadtest_project import celery_app

from ..support.waiting import wait_until

DOWNSAMPLE_TASK = "apps.sessions.tasks.downsample_and_purge"


def session_with_rows(name: str, status: str, ended_days_ago: float | None) -> LoadTestSession:
    target, _ = Target.objects.get_or_create(name="kept", base_url="http://127.0.0.1:9")
    now = timezone.now()
    session = LoadTestSession.objects.create(
        session_name=name,
        target=target,
        status=status,
        start_time=now - timedelta(days=40),
        end_time=None if ended_days_ago is None else now - timedelta(days=ended_days_ago),
    )
    TimeSeriesPoint.objects.create(session=session, timestamp=now, requests=3)
    EndpointStats.objects.create(session=session, name="home", method="GET", url="/")
    record_event(session.pk, "users_changed", "10 users")
    ErrorSample.objects.create(session=session, at=now, endpoint="home",
                               failure_class="network", message="refused")  # fmt: skip
    return session


@pytest.mark.django_db
def test_retention_purges_only_sessions_that_ended_long_enough_ago(settings):
    settings.SESSION_RETENTION_DAYS = 7
    old_completed = session_with_rows("old completed", "completed", ended_days_ago=8)
    old_failed = session_with_rows("old failed", "failed", ended_days_ago=30)
    recent = session_with_rows("recent", "stopped", ended_days_ago=6)
    running = session_with_rows("running for weeks", "running", ended_days_ago=None)
    # Never a session that may still send load, whatever its end_time says.
    stopping = session_with_rows("stopping", "stopping", ended_days_ago=20)
    pending = session_with_rows("never started", "pending", ended_days_ago=None)

    purged = purge_expired_sessions()

    assert sorted(purged) == sorted([old_completed.pk, old_failed.pk])
    remaining = set(LoadTestSession.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, running.pk, stopping.pk, pending.pk}
    for model in (TimeSeriesPoint, EndpointStats, SessionEvent, ErrorSample):
        assert not model.objects.filter(session_id__in=purged).exists(), model
        assert model.objects.filter(session=running).exists(), model
    entry = AuditEntry.objects.get(method="SYSTEM")
    assert entry.username == "system" and entry.path == "SESSION_RETENTION_DAYS"
    assert str(old_completed.pk) in entry.action and str(old_failed.pk) in entry.action
    assert purge_expired_sessions() == []  # nothing left to purge


@pytest.mark.django_db
def test_retention_is_off_by_default(settings):
    assert django_settings.SESSION_RETENTION_DAYS == 0
    settings.SESSION_RETENTION_DAYS = 0
    session_with_rows("ancient", "completed", ended_days_ago=3650)
    assert purge_expired_sessions() == []
    assert LoadTestSession.objects.count() == 1
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_events_recorded_by_the_control_plane_stay_capped(settings):
    settings.SESSION_EVENTS_KEPT = 5
    session = session_with_rows("flapping", "running", ended_days_ago=None)
    for index in range(12):
        record_event(session.pk, "load_reduced", f"reduction {index}")
    reductions = session.events.filter(kind="load_reduced").order_by("at", "pk")
    assert list(reductions.values_list("message", flat=True)) == [
        f"reduction {index}" for index in range(7, 12)
    ]
    # The run's own change is kept apart: the notices never push it out.
    assert session.events.filter(kind="users_changed").count() == 1


@pytest.mark.django_db
def test_engine_events_and_error_samples_stay_capped(settings, redis_client):
    settings.SESSION_EVENTS_KEPT = 4
    settings.ERROR_SAMPLES_KEPT = 3
    session = session_with_rows("noisy", "running", ended_days_ago=None)
    key = SessionKeys(session.pk).events
    try:
        for round_ in range(3):
            for index in range(10):
                at = time.time() + round_ * 100 + index
                name = f"{round_}.{index}"
                event = {"kind": "breaker_opened", "at": at, "message": f"opened {name}"}
                sample = {"kind": ERROR_SAMPLE, "at": at, "endpoint": "home",
                          "failure_class": "network", "message": f"failed {name}"}  # fmt: skip
                redis_client.lpush(key, json.dumps(event), json.dumps(sample))
            store_events(session, redis_client)
            assert session.events.filter(kind="breaker_opened").count() == 4
            assert session.error_samples.count() == 3
    finally:
        redis_client.delete(key)
    assert list(session.error_samples.order_by("at").values_list("message", flat=True)) == [
        "failed 2.7", "failed 2.8", "failed 2.9",
    ]  # fmt: skip


def test_the_periodic_task_is_on_beat_on_the_control_queue():
    entry = django_settings.CELERY_BEAT_SCHEDULE["downsample-timeseries"]
    assert entry["task"] == DOWNSAMPLE_TASK
    assert entry["schedule"] == django_settings.DOWNSAMPLE_INTERVAL_S == 300
    assert DOWNSAMPLE_TASK not in django_settings.CELERY_TASK_ROUTES  # the default: control


@pytest.mark.parametrize(
    "name, value",
    [
        ("TIMESERIES_MINUTE_DAYS", "-1"),
        ("TIMESERIES_MINUTE_DAYS", "nan"),
        ("TIMESERIES_MINUTE_DAYS", "ten"),
        ("SESSION_RETENTION_DAYS", "-0.5"),
        ("SESSION_RETENTION_DAYS", "inf"),
        ("DOWNSAMPLE_INTERVAL_S", "0"),
        ("DOWNSAMPLE_INTERVAL_S", "1e400"),
    ],
)
def test_bad_settings_stop_the_service_naming_the_variable(name, value):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "loadtest_project.settings", name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert name in result.stderr.splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_the_control_worker_runs_the_periodic_task(workers, settings):
    """Sent as beat sends it: the control worker rolls an old session's per-second points
    up into minutes, and (retention off by default) keeps the session."""
    target = Target.objects.create(name="on the worker", base_url="http://127.0.0.1:9")
    session = LoadTestSession.objects.create(
        session_name="old points", target=target, status="completed",
        end_time=timezone.now() - timedelta(days=1),
    )  # fmt: skip
    start = timezone.now().replace(microsecond=0) - timedelta(days=2)
    TimeSeriesPoint.objects.bulk_create(
        TimeSeriesPoint(session=session, timestamp=start + timedelta(seconds=second), requests=2)
        for second in range(600)
    )
    celery_app.send_task(DOWNSAMPLE_TASK)
    wait_until(lambda: not session.timeseries.filter(resolution_s=1).exists(), timeout_s=60)
    assert session.timeseries.filter(resolution_s=60).count() in (10, 11)
    assert sum(session.timeseries.values_list("requests", flat=True)) == 1200
    assert LoadTestSession.objects.filter(pk=session.pk).exists()  # retention is off
