"""Beat's scheduler (loadtest_project/beat.py): the monitor's sub-second interval is stored
exactly, and the settings' entries come back if their rows go."""

from datetime import timedelta

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from loadtest_project import celery_app
from loadtest_project.beat import DatabaseScheduler, ModelEntry

pytestmark = pytest.mark.django_db

MONITOR = "monitor-active-sessions"


@pytest.mark.parametrize(
    ("seconds", "every", "period"),
    [(0.5, 500_000, "microseconds"), (1.0, 1, "seconds"), (2.25, 2_250_000, "microseconds")],
)
def test_an_interval_is_stored_exactly(seconds, every, period):
    entry = ModelEntry.from_entry("tick", app=celery_app, task="x.y", schedule=seconds)
    interval = PeriodicTask.objects.get(name="tick").interval
    assert (interval.every, interval.period) == (every, period)
    assert entry.schedule.run_every == timedelta(seconds=seconds)


def test_the_monitor_entry_is_restored_when_its_row_is_gone():
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    assert MONITOR in scheduler.all_as_schedule()
    PeriodicTask.objects.filter(name=MONITOR).delete()
    restored = scheduler.all_as_schedule()[MONITOR]
    assert restored.schedule.run_every == timedelta(seconds=settings.MONITOR_INTERVAL_S)
    assert restored.task == "apps.sessions.tasks.monitor_active_sessions"
    assert PeriodicTask.objects.filter(name=MONITOR).exists()
    assert IntervalSchedule.objects.exists()


def test_a_monitor_entry_disabled_by_hand_stays_disabled():
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    scheduler.all_as_schedule()
    PeriodicTask.objects.filter(name=MONITOR).update(enabled=False)
    assert MONITOR not in scheduler.all_as_schedule()
