"""What a run actually ran, for everything that puts its figures beside its configuration.

A session's row holds its configuration as it is now: a live change of users or weights
overwrites it. Figures read against that alone mislead (a report said "Users 40" for a run
that spent 70 of its 95 s at 20). So the configuration at the start is rebuilt from the
configuration history (each field changed after the start call takes its first change's old
value), the changes are listed with when, who and through which surface, and the users are
summed up from the per-second series the monitor writes: the active users the shards
reported, weighted by time.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Max, Sum

from apps.sessions.access import config_history
from apps.sessions.models import ConfigChange, LoadTestSession


@dataclass(frozen=True)
class UsersRun:
    """The users of a run: configured at its start and end, and active over time."""

    at_start: int
    at_end: int
    mean: float | None  # active users, time-weighted over the seconds with any
    max: int | None

    def as_dict(self) -> dict:
        return {
            "at_start": self.at_start,
            "at_end": self.at_end,
            "mean": None if self.mean is None else round(self.mean, 1),
            "max": self.max,
        }

    @property
    def changed(self) -> bool:
        return self.at_start != self.at_end


def changes_while_running(session: LoadTestSession) -> list[ConfigChange]:
    """The configuration changes made after the start call, oldest first."""
    if session.start_time is None:
        return []
    return list(
        config_history.history_of(session)
        .filter(changed_at__gte=session.start_time)
        .select_related("changed_by")
        .order_by("changed_at", "pk")
    )


def configuration_at_start(session: LoadTestSession, changes=None) -> dict:
    """The tracked configuration as the run started (JSON-ready, as the history stores it)."""
    values = config_history.snapshot(session)
    seen: set[str] = set()
    for change in changes if changes is not None else changes_while_running(session):
        if change.field not in seen:
            seen.add(change.field)
            values[change.field] = change.old_value
    return values


def users_run(session: LoadTestSession, changes=None) -> UsersRun:
    at_start = configuration_at_start(session, changes).get("concurrent_users")
    # The seconds the load ran: a tick before the first heartbeat or after the shards
    # stopped counts no user, and would pull a steady 10 users' mean down to 9.2.
    points = session.timeseries.filter(users__gt=0)
    totals = points.aggregate(
        user_seconds=Sum(F("users") * F("resolution_s")),
        seconds=Sum("resolution_s"),
        most=Max("users"),
    )
    mean = totals["user_seconds"] / totals["seconds"] if totals["seconds"] else None
    try:
        started = int(at_start if at_start is not None else session.concurrent_users)
    except (TypeError, ValueError):  # a history row that cannot say (hand-edited, old)
        started = session.concurrent_users
    return UsersRun(
        at_start=started,
        at_end=session.concurrent_users,
        mean=mean,
        max=totals["most"],
    )


def change_rows(changes: list[ConfigChange]) -> list[dict]:
    """The changes as the report and the page list them."""
    return [
        {
            "at": change.changed_at,
            "field": change.field,
            "from": config_history.readable(change.old_value),
            "to": config_history.readable(change.new_value),
            "by": change.changed_by.get_username() if change.changed_by else "system",
            "via": change.via,
        }
        for change in changes
    ]
