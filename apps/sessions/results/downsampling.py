"""Bounded time series for sessions that run for weeks: old points rolled up into coarser ones.

The monitor writes one point per second (86,400 rows a day per session). Beat runs
``downsample_all`` every DOWNSAMPLE_INTERVAL_S on the control queue, which keeps:
- per-second points for the last hour,
- per-minute points up to TIMESERIES_MINUTE_DAYS (default 7),
- per-hour points after that,
so a session that runs for a month keeps about 15,000 rows instead of 2.6 million.

A rolled-up point sits at its period's start (epoch-aligned) with ``resolution_s`` 60 or
3600, and its figures merge those of the points it replaces:
- requests, failures, unavailable, suppressed, latency_sum_ms and failures_by_class are
  summed, so totals are exact at every resolution (and the mean latency stays weighted by
  requests: the sum of latencies over the sum of requests);
- p50/p95/p99 take the period's maximum, as the charts do: a spike stays visible when the
  detail is gone. Exact percentiles over the whole run are in the endpoints' histograms;
- users is the mean of the points that had a value, weighted by the time each covers.

Safe beside the monitor: only periods that ended more than an hour ago are touched, and the
monitor writes the current second. Should a shard's very late flush still add to an old
second, it lands either on the rolled-up point itself (same timestamp: the counts add up) or
as a new per-second point, which the next run folds in. Each chunk of periods is merged in
one transaction (rows locked on PostgreSQL; SQLite's IMMEDIATE transactions serialise
writers), so a run interrupted halfway leaves exact totals too, and running twice changes
nothing the first run did not.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from apps.sessions.models import LoadTestSession, TimeSeriesPoint

logger = logging.getLogger(__name__)

SECOND_S = 1
MINUTE_S = 60
HOUR_S = 3600
# Per-second points are kept this long before they become per-minute points.
SECONDS_KEPT_S = HOUR_S
# Source rows merged per transaction, about: short locks, bounded memory.
CHUNK_ROWS = 5000
# What a rolled-up point is made of, normally: the next finer resolution (the minute pass
# runs first, and its cutoff is later than the hour pass's).
SOURCE_RESOLUTION_S = {MINUTE_S: SECOND_S, HOUR_S: MINUTE_S}
# Rows per DELETE ... WHERE pk IN (...): under SQLite's oldest limit on query parameters.
DELETE_BATCH = 900

_FIGURES = (
    "pk",
    "timestamp",
    "resolution_s",
    "requests",
    "failures",
    "unavailable",
    "suppressed",
    "latency_sum_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "users",
    "failures_by_class",
)


@dataclass
class Rollup:
    """The merged figures of one period (see the module's docstring for the rules)."""

    start_s: int
    resolution_s: int
    requests: int = 0
    failures: int = 0
    unavailable: int = 0
    suppressed: int = 0
    latency_sum_ms: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    users_weighted: float = 0.0
    users_weight: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    has_failures_by_class: bool = False

    def add(self, row: dict) -> None:
        for name in ("requests", "failures", "unavailable", "suppressed", "latency_sum_ms"):
            setattr(self, name, getattr(self, name) + row[name])
        for name in ("p50_ms", "p95_ms", "p99_ms"):
            value = row[name]
            current = getattr(self, name)
            if value is not None and (current is None or value > current):
                setattr(self, name, value)
        if row["users"] is not None:
            self.users_weighted += row["users"] * row["resolution_s"]
            self.users_weight += row["resolution_s"]
        if row["failures_by_class"] is not None:
            self.has_failures_by_class = True
            for name, count in row["failures_by_class"].items():
                self.failures_by_class[name] = self.failures_by_class.get(name, 0) + count

    def point(self, session_id: int) -> TimeSeriesPoint:
        users = round(self.users_weighted / self.users_weight) if self.users_weight else None
        return TimeSeriesPoint(
            session_id=session_id,
            timestamp=datetime.fromtimestamp(self.start_s, tz=UTC),
            resolution_s=self.resolution_s,
            requests=self.requests,
            failures=self.failures,
            unavailable=self.unavailable,
            suppressed=self.suppressed,
            latency_sum_ms=self.latency_sum_ms,
            p50_ms=self.p50_ms,
            p95_ms=self.p95_ms,
            p99_ms=self.p99_ms,
            users=users,
            failures_by_class=self.failures_by_class if self.has_failures_by_class else None,
        )


@dataclass
class DownsampleResult:
    """What one run did: rows before and after, and how long it took."""

    sessions: int = 0
    rows_merged: int = 0
    rows_written: int = 0
    seconds: float = 0.0

    @property
    def rows_removed(self) -> int:
        return self.rows_merged - self.rows_written


def cutoffs(now: datetime) -> list[tuple[int, int]]:
    """(resolution, epoch second before which finer points become points of that
    resolution), finest first; each cutoff is aligned to its resolution, so a period is
    rolled up only once it has ended entirely."""
    now_s = now.timestamp()
    hours_after_s = max(settings.TIMESERIES_MINUTE_DAYS * 86400, SECONDS_KEPT_S)
    return [
        (MINUTE_S, _align(now_s - SECONDS_KEPT_S, MINUTE_S)),
        (HOUR_S, _align(now_s - hours_after_s, HOUR_S)),
    ]


def _align(epoch_s: float, resolution_s: int) -> int:
    return math.floor(epoch_s / resolution_s) * resolution_s


def downsample_all(now: datetime | None = None) -> DownsampleResult:
    """Roll up the old points of every session (finished or not); see the module."""
    started = time.monotonic()
    now = now or datetime.now(tz=UTC)
    result = DownsampleResult()
    for resolution_s, cutoff_s in cutoffs(now):
        session_ids = (
            TimeSeriesPoint.objects.filter(
                resolution_s__lt=resolution_s, timestamp__lt=_at(cutoff_s)
            )
            .order_by()
            .values_list("session_id", flat=True)
            .distinct()
        )
        for session_id in list(session_ids):
            merged, written = downsample_session(session_id, resolution_s, cutoff_s)
            result.rows_merged += merged
            result.rows_written += written
            result.sessions += 1
    result.seconds = time.monotonic() - started
    if result.rows_merged:
        logger.info(
            "Time series downsampled: %s rows merged into %s in %s session passes (%.2f s).",
            result.rows_merged,
            result.rows_written,
            result.sessions,
            result.seconds,
        )
    return result


def downsample_session(session_id: int, resolution_s: int, cutoff_s: int) -> tuple[int, int]:
    """Merge the session's points finer than ``resolution_s`` that lie before ``cutoff_s``
    into one point per period, a chunk of periods per transaction. Returns (rows merged,
    rows written)."""
    finer = TimeSeriesPoint.objects.filter(
        session_id=session_id, resolution_s__lt=resolution_s, timestamp__lt=_at(cutoff_s)
    ).order_by("timestamp")
    periods_per_chunk = max(1, CHUNK_ROWS * SOURCE_RESOLUTION_S[resolution_s] // resolution_s)
    merged = written = 0
    while True:
        first = finer.values_list("timestamp", flat=True).first()
        if first is None:
            return merged, written
        chunk_start_s = _align(first.timestamp(), resolution_s)
        chunk_end_s = min(chunk_start_s + periods_per_chunk * resolution_s, cutoff_s)
        chunk_merged, chunk_written = _merge_chunk(
            session_id, resolution_s, chunk_start_s, chunk_end_s
        )
        if not chunk_merged:  # cannot happen (the first point is in the chunk): no spin
            return merged, written
        merged += chunk_merged
        written += chunk_written


def _merge_chunk(session_id: int, resolution_s: int, start_s: int, end_s: int) -> tuple[int, int]:
    """One transaction: every point of [start_s, end_s) that is not coarser than
    ``resolution_s`` (an earlier run's rolled-up point included) becomes one point per
    period that has a finer point; periods without one are left as they are."""
    with transaction.atomic():
        # The session's row first, as ``delete_session`` takes it: a delete then waits for
        # this chunk (and removes its points too), or has happened and there is nothing to do.
        locked = LoadTestSession.objects.select_for_update().filter(pk=session_id)
        if not list(locked.values_list("pk", flat=True)):
            return 0, 0
        rows = list(
            TimeSeriesPoint.objects.select_for_update()
            .filter(
                session_id=session_id,
                resolution_s__lte=resolution_s,
                timestamp__gte=_at(start_s),
                timestamp__lt=_at(end_s),
            )
            .order_by("timestamp")
            .values(*_FIGURES)
        )
        periods: dict[int, list[dict]] = {}
        for row in rows:
            periods.setdefault(_align(row["timestamp"].timestamp(), resolution_s), []).append(row)
        stale_ids, rollups = [], []
        for period_s, members in periods.items():
            if all(row["resolution_s"] == resolution_s for row in members):
                continue  # rolled up already, nothing new
            rollup = Rollup(period_s, resolution_s)
            for row in members:
                rollup.add(row)
            stale_ids += [row["pk"] for row in members]
            rollups.append(rollup.point(session_id))
        if stale_ids:
            # Deleted first: a rolled-up point takes its period's start, which a per-second
            # point may hold (unique per session and timestamp).
            for index in range(0, len(stale_ids), DELETE_BATCH):
                batch = stale_ids[index : index + DELETE_BATCH]
                TimeSeriesPoint.objects.filter(pk__in=batch).delete()
            TimeSeriesPoint.objects.bulk_create(rollups)
    return len(stale_ids), len(rollups)


def _at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)
