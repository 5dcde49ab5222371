"""A schedule's time window: when a scheduled run may start, and how long it may then last.

Pure functions of a moment, so the rules (days, times, time zone, a window past midnight) are
tested without clocks or processes. A window is given in its own time zone; ``days`` are the
days it *opens* on (Monday 0 ... Sunday 6), so a Friday 22:00-02:00 window still holds at
Saturday 01:00. Start equal to end, or no times at all, is the whole day.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    """When scheduled runs may happen; an empty ``days`` means every day."""

    days: Collection[int] = ()
    start: time | None = None
    end: time | None = None
    time_zone: str = "UTC"

    def _opening(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.start or time(0), zone)
        end_day = day if self.end and self.end > (self.start or time(0)) else day + timedelta(1)
        end = datetime.combine(end_day, self.end or time(0), zone)
        return start, end

    def open_until(self, now: datetime) -> datetime | None:
        """The end of the window holding ``now`` (aware), or None when ``now`` is outside."""
        zone = ZoneInfo(self.time_zone)
        local = now.astimezone(zone)
        # The window may have opened today or, past midnight, yesterday.
        for day in (local.date(), local.date() - timedelta(1)):
            if self.days and day.weekday() not in self.days:
                continue
            start, end = self._opening(day, zone)
            if start <= local < end:
                return end
        return None

    def is_open(self, now: datetime) -> bool:
        return self.open_until(now) is not None

    def seconds_left(self, now: datetime) -> float | None:
        """Seconds until the window holding ``now`` closes; None when outside."""
        end = self.open_until(now)
        return None if end is None else (end - now).total_seconds()
