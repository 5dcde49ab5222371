"""The dashboard's charts: a session's time-series points, bucketed on the server.

A day-long session has 86,400 points; a browser needs about as many as it has pixels. So
``GET /api/sessions/{id}/chart/`` divides the range asked for into at most ``points``
buckets of whole seconds and sends one value per bucket and figure, in columns (the shape
uPlot draws from): rates are averaged over the bucket, latency percentiles take the
bucket's maximum (a spike stays visible when zoomed out), users the mean, and a bucket
without data is null. Zooming in asks for a shorter range and so gets finer buckets.

Points older than an hour cover a minute or an hour (``resolution_s``, see
``downsampling``). Such a point's counts are spread evenly over the seconds it covers, so
a bucket finer than the point shows the point's average rate, its percentiles and users
apply to every bucket it overlaps, and a bucket half covered counts the half it holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection
from rest_framework import serializers

from apps.sessions.api.query_params import parse_time
from apps.sessions.models import LoadTestSession
from apps.sessions.results.downsampling import HOUR_S

DEFAULT_POINTS = 1000
MAX_POINTS = 2000


@dataclass
class _Bucket:
    seconds_with_data: int = 0
    requests: float = 0
    failures: float = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    users_sum: float = 0
    users_seen: int = 0
    failures_by_class: dict[str, float] = field(default_factory=dict)

    def add(self, requests, failures, p50, p95, p99, users, by_class, seconds: int) -> None:
        """Add ``seconds`` of data: counts already scaled to them, users their mean."""
        self.seconds_with_data += seconds
        self.requests += requests
        self.failures += failures
        self.p50_ms = _max(self.p50_ms, p50)
        self.p95_ms = _max(self.p95_ms, p95)
        self.p99_ms = _max(self.p99_ms, p99)
        if users is not None:
            self.users_sum += users * seconds
            self.users_seen += seconds
        for failure_class, failed in by_class.items():
            self.failures_by_class[failure_class] = (
                self.failures_by_class.get(failure_class, 0) + failed
            )


def parse_points(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_POINTS
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_POINTS):
        raise serializers.ValidationError({"points": f"Give a number from 1 to {MAX_POINTS}."})
    return int(raw)


def chart_range(session: LoadTestSession, params) -> tuple[int, int]:
    """The range asked for, in whole epoch seconds [from, to); by default the whole run
    (from the load's start, or the start call, to the end or now)."""
    start = parse_time(params.get("from"), "from")
    end = parse_time(params.get("to"), "to")
    if start is None:
        start = session.load_started_at or session.start_time or session.created_at
    if end is None:
        end = session.end_time or _last_ticked(session) or datetime.now(tz=start.tzinfo)
    from_s, to_s = math.floor(start.timestamp()), math.ceil(end.timestamp())
    if to_s < from_s:
        raise serializers.ValidationError({"to": "Give a time after 'from'."})
    return from_s, max(to_s, from_s + 1)


def _last_ticked(session: LoadTestSession) -> datetime | None:
    """For a running session, the end of the newest second the monitor has given its users
    and latency: the seconds after it are still filling (a part of their requests, no users
    yet), and a page drawing them would show a false drop and a gap it never closes (the
    stream appends only newer points)."""
    if session.end_time is not None:
        return None
    newest = (
        session.timeseries.filter(users__isnull=False)
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    return newest + timedelta(seconds=1) if newest is not None else None


def chart(session: LoadTestSession, params) -> dict:
    """The bucketed columns of ``session``'s time series (see the module's docstring)."""
    from_s, to_s = chart_range(session, params)
    points = parse_points(params.get("points"))
    bucket_s = max(1, math.ceil((to_s - from_s) / points))
    count = math.ceil((to_s - from_s) / bucket_s)
    buckets = [_Bucket() for _ in range(count)]
    # A coarse point that starts before ``from`` may still cover part of the range.
    for second, resolution_s, *figures in _rows(session, from_s - HOUR_S + 1, to_s):
        if resolution_s <= 1:
            if second >= from_s:
                buckets[(second - from_s) // bucket_s].add(*figures, seconds=1)
            continue
        _spread(buckets, from_s, to_s, bucket_s, second, resolution_s, figures)

    def seconds_in(index: int) -> int:  # the last bucket may be cut short by ``to``
        return min(bucket_s, to_s - from_s - index * bucket_s)

    def per_second(index: int, value: int) -> float | None:
        if not buckets[index].seconds_with_data:
            return None
        return round(value / seconds_in(index), 3)

    classes = sorted({name for bucket in buckets for name in bucket.failures_by_class})
    return {
        "from": from_s,
        "to": to_s,
        "bucket_s": bucket_s,
        "t": [from_s + index * bucket_s for index in range(count)],
        "rps": [per_second(i, bucket.requests) for i, bucket in enumerate(buckets)],
        "failures_per_s": [per_second(i, bucket.failures) for i, bucket in enumerate(buckets)],
        "p50_ms": [bucket.p50_ms for bucket in buckets],
        "p95_ms": [bucket.p95_ms for bucket in buckets],
        "p99_ms": [bucket.p99_ms for bucket in buckets],
        "users": [
            round(bucket.users_sum / bucket.users_seen, 2) if bucket.users_seen else None
            for bucket in buckets
        ],
        "failures_by_class": {
            name: [
                per_second(i, bucket.failures_by_class.get(name, 0))
                for i, bucket in enumerate(buckets)
            ]
            for name in classes
        },
    }


def _spread(buckets, from_s: int, to_s: int, bucket_s: int, start_s: int, resolution_s: int,
            figures) -> None:  # fmt: skip
    """Add a point covering ``resolution_s`` seconds to each bucket it overlaps, its counts
    in proportion to the overlap."""
    requests, failures, p50, p95, p99, users, by_class = figures
    first_s, end_s = max(start_s, from_s), min(start_s + resolution_s, to_s)
    if end_s <= first_s:
        return  # the point ends before the range
    for index in range((first_s - from_s) // bucket_s, (end_s - 1 - from_s) // bucket_s + 1):
        bucket_start_s = from_s + index * bucket_s
        overlap_s = min(bucket_start_s + bucket_s, end_s) - max(bucket_start_s, first_s)
        if overlap_s <= 0:
            continue
        share = overlap_s / resolution_s
        buckets[index].add(
            requests * share,
            failures * share,
            p50,
            p95,
            p99,
            users,
            {name: failed * share for name, failed in by_class.items()},
            seconds=overlap_s,
        )


def _rows(session: LoadTestSession, from_s: int, to_s: int) -> Iterator[tuple]:
    """The points starting in the range as (epoch second, resolution_s, requests, failures,
    p50, p95, p99, users, failures by class).

    Read through the cursor, not the ORM: Django's per-row converters (a timestamp parsed
    and made aware, a JSON decoded, on every one of 86,400 rows) took most of a second;
    here a timestamp is one C call and only non-empty failure counts are decoded.
    """
    query = (
        session.timeseries.filter(
            timestamp__gte=datetime.fromtimestamp(from_s, tz=UTC),
            timestamp__lt=datetime.fromtimestamp(to_s, tz=UTC),
        )
        .order_by()
        .values_list(
            "timestamp",
            "resolution_s",
            "requests",
            "failures",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "users",
            "failures_by_class",
        )
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(10_000):
            for timestamp, *figures, by_class in chunk:
                yield (_epoch_s(timestamp), *figures, _counts(by_class))


def _epoch_s(value: datetime | str) -> int:
    """SQLite hands back the text it stored (UTC), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return int(value.timestamp())


def _counts(value: dict | str | None) -> dict[str, int]:
    if isinstance(value, str):
        return json.loads(value) if value not in ("{}", "null") else {}
    return value or {}


def _max(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None or value > current else current
