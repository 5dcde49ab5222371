"""Celery beat's scheduler: django-celery-beat's DatabaseScheduler, keeping sub-second intervals.

The stock scheduler stores an interval as a whole number of seconds (``IntervalSchedule.every``
is an integer column), so the monitor's 0.5 s (MONITOR_INTERVAL_S in the tests) would become
0 s: beat would queue it on every loop. Here an interval that is not a whole number of seconds
is stored in microseconds, which the model supports as a period of its own.

The settings' entries (CELERY_BEAT_SCHEDULE: the sessions' monitor) are the service's own, not
a user's: whenever beat reads the schedule from the database, one that has gone from there
(deleted in the admin, a test flushing the database) is written back rather than dropped.

Exactly one beat sends: the lead is held in Redis (``BeatLeadership``), renewed every tick; a
second beat on another host stands by and takes over when the first stops renewing. A beat
restarted on the same host (the run command's supervisor, compose's restart) leads at once.
"""

import logging
import socket

import redis
from celery import schedules
from django_celery_beat import schedulers
from django_celery_beat.models import IntervalSchedule

from apps.workers.control import KEY_PREFIX, decode, get_redis

logger = logging.getLogger(__name__)


# One beat sends at a time: a second one (started by mistake, or a standby) holds back until
# the first stops renewing its lead, then takes over. Without this every monitor tick and
# every schedule firing would be sent twice.
LEADER_KEY = f"{KEY_PREFIX}:beat:leader"
LEADER_TTL_S = 15
STANDBY_POLL_S = 5.0
# Take the lead if free, or renew it if it is ours. KEYS: the leader key. ARGV: who, TTL s.
LEAD_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


class BeatLeadership:
    """The lead among beat processes, held in Redis for LEADER_TTL_S and renewed every tick."""

    def __init__(self, client, identity: str, ttl_s: int = LEADER_TTL_S) -> None:
        self.client, self.identity, self.ttl_s = client, identity, ttl_s
        self.leading: bool | None = None

    def hold(self) -> bool:
        """True while this process leads. Redis unreachable: not leading (nothing could be
        sent anyway; the broker is that Redis)."""
        try:
            leading = bool(self.client.eval(LEAD_SCRIPT, 1, LEADER_KEY, self.identity, self.ttl_s))
        except redis.RedisError:
            leading = False
        if leading != self.leading:
            holder = None if leading else self._holder()
            logger.warning(
                "Beat %s: %s.",
                self.identity,
                "leads: it sends the monitor ticks and schedule firings"
                if leading
                else f"stands by; beat {holder or '(unknown)'} leads",
            )
            self.leading = leading
        return leading

    def _holder(self) -> str | None:
        try:
            return decode(self.client.get(LEADER_KEY))
        except redis.RedisError:
            return None


class ModelEntry(schedulers.ModelEntry):
    """A beat entry backed by a PeriodicTask row, fractional intervals stored exactly."""

    @classmethod
    def to_model_schedule(cls, schedule):
        schedule = schedules.maybe_schedule(schedule)
        if type(schedule) is schedules.schedule:
            seconds = schedule.run_every.total_seconds()
            if seconds != int(seconds):
                interval, _ = IntervalSchedule.objects.get_or_create(
                    every=max(round(seconds * 1_000_000), 1), period=IntervalSchedule.MICROSECONDS
                )
                return interval, "interval"
        return super().to_model_schedule(schedule)


class DatabaseScheduler(schedulers.DatabaseScheduler):
    """The Procfile's ``beat --scheduler loadtest_project.beat:DatabaseScheduler``."""

    Entry = ModelEntry

    def __init__(self, *args, **kwargs) -> None:
        # The host names the beat: its restart on the same host leads again at once.
        self.leadership = BeatLeadership(get_redis(), socket.gethostname())
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        if not self.leadership.hold():
            return STANDBY_POLL_S
        return super().tick(*args, **kwargs)

    def schedule_changed(self) -> bool:
        # The stock check compares the change marker's time with the last one seen, and
        # misses the first change after the marker's row was deleted (a flushed database):
        # no time, then a time, reads as "unchanged" and a new schedule would never fire.
        before = self._last_timestamp
        changed = super().schedule_changed()
        return changed or (before is None and self._last_timestamp is not None)

    def all_as_schedule(self):
        schedule = super().all_as_schedule()
        for name, fields in self.app.conf.beat_schedule.items():
            if name not in schedule and not self.Model.objects.filter(name=name).exists():
                schedule[name] = self.Entry.from_entry(name, app=self.app, **fields)
        return schedule
