"""Schedules of load: saved with their beat entry, and each firing turned into a run."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.sessions.access.permissions import (
    ADD_SCHEDULES,
    CHANGE_SCHEDULES,
    DELETE_SCHEDULES,
    require_permission,
)
from apps.sessions.choices import ACTIVE_STATUSES, SessionStatus, Via
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.editing import create_session, delete_session
from apps.sessions.lifecycle.start import start_session
from apps.sessions.models import LoadTestSession, Schedule

logger = logging.getLogger(__name__)


# Beat queues this with the schedule's id (apps/sessions/tasks.py), on the control queue.
RUN_SCHEDULE_TASK = "apps.sessions.tasks.run_schedule"
# A run waiting to start counts as running: a second firing must not start another beside it.
SCHEDULE_BUSY_STATUSES = (SessionStatus.PENDING, *ACTIVE_STATUSES)


def save_schedule(schedule: Schedule, user=None) -> Schedule:
    """Create or change a schedule, and the PeriodicTask beat fires it by, in one transaction.

    Beat (django-celery-beat's DatabaseScheduler) notices the changed PeriodicTask within its
    loop interval, so a new, changed, disabled or enabled schedule needs no restart.
    """
    creating = schedule.pk is None
    require_permission(
        user,
        ADD_SCHEDULES if creating else CHANGE_SCHEDULES,
        "create schedules" if creating else "change schedules",
    )
    if creating and user is not None and user.is_authenticated:
        schedule.created_by = user
    schedule.full_clean()
    with transaction.atomic():
        schedule.save()
        _sync_periodic_task(schedule)
    return schedule


def _sync_periodic_task(schedule: Schedule) -> None:
    fields: dict[str, object] = {"interval": None, "crontab": None}
    if schedule.interval_seconds:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=schedule.interval_seconds, period=IntervalSchedule.SECONDS
        )
    else:
        minute, hour, day_of_month, month_of_year, day_of_week = schedule.crontab.split()
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=schedule.time_zone,
        )
    task = schedule.periodic_task or PeriodicTask(name=f"schedule-{schedule.pk}")
    task.task = RUN_SCHEDULE_TASK
    task.args = json.dumps([schedule.pk])
    task.queue = "control"
    task.enabled = schedule.enabled
    # A firing the control worker has not taken before the next one is due is dropped, not
    # piled up behind an outage (the next firing comes anyway).
    task.expire_seconds = schedule.interval_seconds
    task.description = f"Schedule {schedule.pk}: {schedule.name}"[:200]
    for name, value in fields.items():
        setattr(task, name, value)
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=task)


def delete_schedule(schedule: Schedule, user=None) -> None:
    """Delete a schedule and its PeriodicTask; its runs stay, as ordinary sessions."""
    require_permission(user, DELETE_SCHEDULES, "delete schedules")
    with transaction.atomic():
        if schedule.periodic_task_id:
            PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
        schedule.delete()


def _note_schedule(schedule_id: int, message: str, skipped: bool = False) -> None:
    logger.info("Schedule %s: %s", schedule_id, message)
    fields: dict[str, object] = {"last_message": message}
    if skipped:
        fields.update(last_skipped_at=timezone.now(), skipped_runs=F("skipped_runs") + 1)
    Schedule.objects.filter(pk=schedule_id).update(**fields)


def run_schedule(schedule_id: int, now: datetime | None = None) -> LoadTestSession | None:
    """One firing of a schedule (beat, through the task): start a run, or record why not.

    No overlap: while the previous run is pending or active the firing is skipped and counted.
    Outside the window nothing starts. The run is created and started with the permissions
    of the schedule's owner, like any session that person starts; its duration is cut to end
    when the window closes.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # Lock the schedule's row (the whole database on SQLite) until the run exists, so two
        # firings racing cannot both find no run and both start one.
        if not Schedule.objects.filter(pk=schedule_id).update(enabled=F("enabled")):
            return None  # deleted meanwhile
        schedule = Schedule.objects.select_related("template", "created_by").get(pk=schedule_id)
        if not schedule.enabled:
            return None
        seconds_left = schedule.window().seconds_left(now)
        if seconds_left is None:
            logger.debug("Schedule %s: outside its window, nothing started.", schedule_id)
            return None
        busy = schedule.runs.filter(status__in=SCHEDULE_BUSY_STATUSES).order_by("pk").first()
        if busy is not None:
            _note_schedule(
                schedule_id,
                f"Skipped at {now:%Y-%m-%d %H:%M:%S %Z}: the previous run, session {busy.pk}, "
                f"is still {busy.status}.",
                skipped=True,
            )
            return None
        owner = schedule.created_by
        if owner is None or not owner.is_active:
            _note_schedule(schedule_id, "Not started: the schedule's owner no longer exists.")
            return None
        config = schedule.template.config()
        # To the second: runs of a schedule firing more than once a minute stay distinct.
        config["session_name"] = f"{schedule.name} {now:%Y-%m-%d %H:%M:%S}"[:200]
        duration = schedule.run_duration_minutes or config["duration_minutes"]
        if schedule.window_start is not None:
            # A run never outlasts its window; 0 (until stopped) ends with the window too.
            window_minutes = Decimal(seconds_left / 60).quantize(Decimal("0.0001"))
            duration = min(duration, window_minutes) if duration else window_minutes
        config["duration_minutes"] = max(duration, Decimal("0.0001"))
        run = LoadTestSession(**config, schedule=schedule)
        try:
            run = create_session(
                run, user=owner, via=Via.SCHEDULE, origin=f"a run of schedule {schedule.name!r}"
            )
        except (PermissionDenied, ValidationError) as exc:
            _note_schedule(schedule_id, f"Not started: {_words(exc)}")
            return None
        Schedule.objects.filter(pk=schedule_id).update(
            last_run_at=now, last_message=f"Started session {run.pk}."
        )
    try:
        return start_session(run, user=owner, via=Via.SCHEDULE)
    except (PermissionDenied, ValidationError, SessionStateError, EngineUnavailable) as exc:
        # A run that never started is withdrawn (a pending one would hold off every later
        # firing as "still running"); the schedule says why.
        run.refresh_from_db(fields=["status"])
        if run.status == SessionStatus.PENDING:
            delete_session(run)
        _note_schedule(schedule_id, f"A run could not start: {_words(exc)}")
        return None


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)
