"""Beat's scheduler (loadtest_project/beat.py): the monitor's sub-second interval is stored
exactly, the settings' entries come back if their rows go, and one beat leads at a time."""

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from loadtest_project import celery_app
from loadtest_project.beat import LEADER_KEY, BeatLeadership, DatabaseScheduler, ModelEntry
from loadtest_project.embedded_redis import free_port

from ..support.waiting import wait_until

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


@pytest.fixture
def no_leader(redis_client):
    redis_client.delete(LEADER_KEY)
    yield
    redis_client.delete(LEADER_KEY)


def test_one_beat_leads_and_another_takes_over_when_it_stops_renewing(redis_client, no_leader):
    first = BeatLeadership(redis_client, "host-a", ttl_s=1)
    second = BeatLeadership(redis_client, "host-b", ttl_s=1)
    assert first.hold() is True
    assert second.hold() is False  # stands by: every tick and firing would be sent twice
    assert first.hold() is True  # renewed
    # The first stops renewing (killed, partitioned): the second leads once its lease ends.
    wait_until(second.hold, timeout_s=5, interval_s=0.1, what="The second beat leading")
    assert first.hold() is False


def test_a_beat_restarted_on_the_same_host_leads_at_once(redis_client, no_leader):
    assert BeatLeadership(redis_client, "host-a").hold() is True
    restarted = BeatLeadership(redis_client, "host-a")
    assert restarted.hold() is True
    assert redis_client.ttl(LEADER_KEY) > 0


def test_without_redis_a_beat_does_not_lead():
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert BeatLeadership(unreachable, "host-a").hold() is False
