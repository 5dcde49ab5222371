"""Celery beat's scheduler: django-celery-beat's DatabaseScheduler, keeping sub-second intervals.

The stock scheduler stores an interval as a whole number of seconds (``IntervalSchedule.every``
is an integer column), so the monitor's 0.5 s (MONITOR_INTERVAL_S in the tests) would become
0 s: beat would queue it on every loop. Here an interval that is not a whole number of seconds
is stored in microseconds, which the model supports as a period of its own.

The settings' entries (CELERY_BEAT_SCHEDULE: the sessions' monitor) are the service's own, not
a user's: whenever beat reads the schedule from the database, one that has gone from there
(deleted in the admin, a test flushing the database) is written back rather than dropped.
"""

from celery import schedules
from django_celery_beat import schedulers
from django_celery_beat.models import IntervalSchedule


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
