"""Bounded time series: old per-second points rolled up into per-minute and per-hour points
(apps/sessions/downsampling.py), with exact totals, at the documented boundaries, idempotent,
and readable by the chart, the time-series API and the export."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from django.db.models import Sum
from django.test import override_settings

from apps.sessions.models import LoadTestSession, Target, TimeSeriesPoint
from apps.sessions.results import downsampling
from apps.sessions.results.downsampling import HOUR_S, MINUTE_S, downsample_all
from apps.sessions.results.sync import add_point
from apps.workers.stats import SecondTotals

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # aligned to the hour
START_S = int(START.timestamp())
CLASSES = ("http_5xx", "network", "timeout")


def running_session(name: str = "weeks") -> LoadTestSession:
    target, _ = Target.objects.get_or_create(name="downsampled", base_url="http://127.0.0.1:9")
    return LoadTestSession.objects.create(
        session_name=name,
        target=target,
        duration_minutes=0,  # until stopped
        status="running",
        start_time=START,
        load_started_at=START,
    )


def monitor_seconds(session, first_s: int, count: int, rng: random.Random) -> None:
    """Per-second points as the monitor writes them (counts, and a tick's figures on each
    second), added to the session's totals as the monitor does."""
    points = []
    for second in range(first_s, first_s + count):
        requests = rng.randrange(0, 50)
        by_class = {name: rng.randrange(0, 3) for name in CLASSES if rng.random() < 0.3}
        failures = sum(by_class.values())
        points.append(
            TimeSeriesPoint(
                session=session,
                timestamp=datetime.fromtimestamp(second, tz=UTC),
                requests=requests + failures,
                failures=failures,
                unavailable=by_class.get("network", 0) + by_class.get("timeout", 0),
                suppressed=rng.randrange(0, 2),
                latency_sum_ms=(requests + failures) * rng.uniform(1, 100),
                p50_ms=rng.uniform(1, 10) if requests else None,
                p95_ms=rng.uniform(10, 100) if requests else None,
                p99_ms=rng.uniform(100, 1000) if requests else None,
                users=rng.randrange(5, 15) if rng.random() < 0.9 else None,
                failures_by_class=by_class,
            )
        )
    TimeSeriesPoint.objects.bulk_create(points, batch_size=2000)
    added = sum(point.requests for point in points)
    failed = sum(point.failures for point in points)
    LoadTestSession.objects.filter(pk=session.pk).update(
        total_requests=session.total_requests + added,
        total_failures=session.total_failures + failed,
    )
    session.refresh_from_db()


def totals(session) -> dict:
    points = TimeSeriesPoint.objects.filter(session=session)
    sums = points.aggregate(
        requests=Sum("requests"),
        failures=Sum("failures"),
        unavailable=Sum("unavailable"),
        suppressed=Sum("suppressed"),
        latency_sum_ms=Sum("latency_sum_ms"),
    )
    by_class: dict[str, int] = {}
    for counts in points.values_list("failures_by_class", flat=True):
        for name, count in (counts or {}).items():
            by_class[name] = by_class.get(name, 0) + count
    sums["failures_by_class"] = by_class
    return sums


def resolutions(session) -> dict[int, int]:
    rows = TimeSeriesPoint.objects.filter(session=session).values_list("resolution_s", flat=True)
    counted: dict[int, int] = {}
    for resolution in rows:
        counted[resolution] = counted.get(resolution, 0) + 1
    return counted


def at(second: int) -> datetime:
    return datetime.fromtimestamp(second, tz=UTC)


@override_settings(TIMESERIES_MINUTE_DAYS=0.125)  # per-minute points for 3 hours
def test_downsampling_as_time_passes_keeps_exact_totals():
    """Five simulated hours of a session, written second by second and downsampled every
    ten minutes as beat would: every count stays exact and equals the session's totals."""
    rng = random.Random(12)
    session = running_session()
    for minute in range(0, 5 * 60, 10):
        monitor_seconds(session, START_S + minute * 60, 600, rng)
        before = totals(session)
        downsample_all(now=at(START_S + (minute + 10) * 60))
        after = totals(session)
        assert after["latency_sum_ms"] == pytest.approx(before["latency_sum_ms"], rel=1e-12)
        del before["latency_sum_ms"], after["latency_sum_ms"]
        assert after == before
    assert totals(session)["requests"] == session.total_requests
    assert totals(session)["failures"] == session.total_failures
    # 5 h: the last hour per second, the 2 hours before per minute, the first 2 per hour.
    assert resolutions(session) == {1: 3600, MINUTE_S: 120, HOUR_S: 2}


@override_settings(TIMESERIES_MINUTE_DAYS=0.125)
def test_resolution_boundaries_are_aligned_periods_that_have_ended():
    rng = random.Random(3)
    session = running_session()
    monitor_seconds(session, START_S, 5 * 3600, rng)
    now_s = START_S + 5 * 3600 + 30  # mid-minute: that minute's first 30 s are still "fresh"
    downsample_all(now=at(now_s))
    points = list(TimeSeriesPoint.objects.filter(session=session).order_by("timestamp"))
    by_resolution: dict[int, list[int]] = {1: [], MINUTE_S: [], HOUR_S: []}
    for point in points:
        by_resolution[point.resolution_s].append(int(point.timestamp.timestamp()))
    minute_cutoff = (now_s - 3600) // 60 * 60
    hour_cutoff = (now_s - 3 * 3600) // 3600 * 3600
    assert min(by_resolution[1]) == minute_cutoff  # per second: the last hour, whole minutes
    assert by_resolution[MINUTE_S][0] == hour_cutoff and by_resolution[MINUTE_S][-1] == (
        minute_cutoff - 60
    )
    assert all(second % 60 == 0 for second in by_resolution[MINUTE_S])
    assert by_resolution[HOUR_S] == [START_S, START_S + 3600]
    # Periods follow each other without a gap or an overlap.
    ends = [int(p.timestamp.timestamp()) + p.resolution_s for p in points]
    starts = [int(p.timestamp.timestamp()) for p in points]
    assert starts[1:] == ends[:-1]


def test_default_keeps_per_minute_points_for_seven_days():
    session = running_session()
    for day_s in (0, 6 * 86400, 8 * 86400):
        monitor_seconds(session, START_S + day_s, 120, random.Random(day_s))
    downsample_all(now=at(START_S + 8 * 86400 + 7200))
    kept = dict(
        TimeSeriesPoint.objects.filter(session=session).values_list("timestamp", "resolution_s")
    )
    assert kept == {
        at(START_S): HOUR_S,  # older than 7 days
        at(START_S + 6 * 86400): MINUTE_S,
        at(START_S + 6 * 86400 + 60): MINUTE_S,
        at(START_S + 8 * 86400): MINUTE_S,
        at(START_S + 8 * 86400 + 60): MINUTE_S,
    }


@override_settings(TIMESERIES_MINUTE_DAYS=0.125)
def test_a_second_run_changes_nothing():
    session = running_session()
    monitor_seconds(session, START_S, 4 * 3600 + 17, random.Random(5))
    now = at(START_S + 4 * 3600 + 17)
    first = downsample_all(now=now)
    assert first.rows_merged > first.rows_written > 0
    kept = list(TimeSeriesPoint.objects.filter(session=session).order_by("timestamp").values())
    again = downsample_all(now=now)
    assert (again.rows_merged, again.rows_written) == (0, 0)
    assert list(TimeSeriesPoint.objects.filter(session=session).order_by("timestamp").values()) == (
        kept
    )


def test_merged_figures_sum_counts_weight_means_and_keep_the_peak():
    session = running_session()
    rows = [
        dict(requests=10, failures=1, unavailable=1, suppressed=2, latency_sum_ms=100.0,
             p50_ms=5.0, p95_ms=50.0, p99_ms=90.0, users=10, failures_by_class={"network": 1}),
        dict(requests=30, failures=3, unavailable=0, suppressed=0, latency_sum_ms=900.0,
             p50_ms=7.0, p95_ms=20.0, p99_ms=400.0, users=20,
             failures_by_class={"http_5xx": 3}),
        dict(requests=0, failures=0, unavailable=0, suppressed=1, latency_sum_ms=0.0,
             p50_ms=None, p95_ms=None, p99_ms=None, users=None, failures_by_class=None),
    ]  # fmt: skip
    TimeSeriesPoint.objects.bulk_create(
        TimeSeriesPoint(session=session, timestamp=at(START_S + 5 + index), **row)
        for index, row in enumerate(rows)
    )
    downsample_all(now=at(START_S + 2 * 3600))
    (point,) = TimeSeriesPoint.objects.filter(session=session)
    assert (point.timestamp, point.resolution_s) == (START, MINUTE_S)
    assert (point.requests, point.failures, point.unavailable, point.suppressed) == (40, 4, 1, 3)
    assert point.mean_ms == 25.0  # (100 + 900) / 40: weighted by requests, not (10 + 30) / 2
    assert (point.p50_ms, point.p95_ms, point.p99_ms) == (7.0, 50.0, 400.0)  # the peaks
    assert point.users == 15  # the mean of the seconds that had a value
    assert point.failures_by_class == {"network": 1, "http_5xx": 3}
    assert point.requests_per_s == pytest.approx(40 / 60)


def test_a_late_flush_into_a_rolled_up_period_is_counted_once():
    """A shard's very late flush of an old second: on the rolled-up point's own second it
    adds to it (the monitor's update); on another second it is a new per-second point that
    the next run folds in."""
    session = running_session()
    monitor_seconds(session, START_S, 120, random.Random(8))
    now = at(START_S + 2 * 3600)
    downsample_all(now=now)
    expected = totals(session)["requests"]
    add_point(session, START_S, SecondTotals(requests=7, latency_sum_us=7000))
    add_point(session, START_S + 61, SecondTotals(requests=5, failures=5))
    assert resolutions(session) == {MINUTE_S: 2, 1: 1}
    downsample_all(now=now)
    assert resolutions(session) == {MINUTE_S: 2}
    assert totals(session)["requests"] == expected + 12
    assert TimeSeriesPoint.objects.get(session=session, timestamp=at(START_S + 60)).failures >= 5


def test_every_session_is_downsampled_and_each_keeps_its_own_totals():
    first, second = running_session("one"), running_session("two")
    monitor_seconds(first, START_S, 600, random.Random(1))
    monitor_seconds(second, START_S + 30, 600, random.Random(2))
    result = downsample_all(now=at(START_S + 3 * 3600))
    assert result.rows_merged == 1200 and result.rows_written == 10 + 11
    for session in (first, second):
        assert totals(session)["requests"] == session.total_requests


def test_fresh_points_are_left_alone():
    session = running_session()
    monitor_seconds(session, START_S, 3600, random.Random(4))
    result = downsample_all(now=at(START_S + 3600))
    assert (result.rows_merged, result.rows_written) == (0, 0)
    assert resolutions(session) == {1: 3600}


# --- reading coarse points ----------------------------------------------------------------


def mixed_session() -> LoadTestSession:
    """Hour 0 as one hour point (5 req/s), hour 1 as minute points (10 req/s), then 10 min
    of seconds (20 req/s)."""
    session = running_session("mixed")
    points = [TimeSeriesPoint(session=session, timestamp=START, resolution_s=HOUR_S,
                              requests=5 * 3600, failures=3600, p95_ms=500.0, users=4,
                              failures_by_class={"network": 3600})]  # fmt: skip
    points += [
        TimeSeriesPoint(session=session, timestamp=at(START_S + 3600 + minute * 60),
                        resolution_s=MINUTE_S, requests=600, p95_ms=50.0, users=8,
                        failures_by_class={})
        for minute in range(60)
    ]  # fmt: skip
    points += [
        TimeSeriesPoint(session=session, timestamp=at(START_S + 7200 + second), requests=20,
                        p95_ms=5.0, users=12, failures_by_class={})
        for second in range(600)
    ]  # fmt: skip
    TimeSeriesPoint.objects.bulk_create(points)
    LoadTestSession.objects.filter(pk=session.pk).update(
        status="completed", end_time=at(START_S + 7800)
    )
    return LoadTestSession.objects.get(pk=session.pk)


def test_chart_over_mixed_granularity_divides_by_each_points_duration(viewer_api):
    session = mixed_session()
    url = f"/api/sessions/{session.pk}/chart/"
    body = viewer_api.get(url, {"points": 130}).json()
    assert body["bucket_s"] == 60 and len(body["t"]) == 130
    assert body["rps"] == [5.0] * 60 + [10.0] * 60 + [20.0] * 10
    assert body["failures_per_s"][:60] == [1.0] * 60
    assert body["p95_ms"] == [500.0] * 60 + [50.0] * 60 + [5.0] * 10
    assert body["users"] == [4.0] * 60 + [8.0] * 60 + [12.0] * 10
    assert body["failures_by_class"]["network"][:61] == [1.0] * 60 + [0.0]
    # Whatever the buckets, the rates add back up to the requests stored.
    for points in (1, 7, 1000):
        coarse = viewer_api.get(url, {"points": points}).json()
        counted = sum(
            rate * min(coarse["bucket_s"], coarse["to"] - start)
            for rate, start in zip(coarse["rps"], coarse["t"], strict=True)
            if rate is not None
        )
        assert counted == pytest.approx(5 * 3600 + 600 * 60 + 20 * 600, rel=1e-3)


def test_zooming_into_an_hour_point_shows_its_average_not_a_gap(viewer_api):
    session = mixed_session()
    body = viewer_api.get(
        f"/api/sessions/{session.pk}/chart/",
        {"from": START_S + 1800, "to": START_S + 1830},  # inside the hour point
    ).json()
    assert body["bucket_s"] == 1
    assert body["rps"] == [5.0] * 30 and body["p95_ms"] == [500.0] * 30
    across = viewer_api.get(
        f"/api/sessions/{session.pk}/chart/",
        {"from": START_S + 3570, "to": START_S + 3630, "points": 2},  # hour | minute
    ).json()
    assert across["rps"] == [5.0, 10.0]


def test_timeseries_api_and_csv_export_say_what_each_point_covers(viewer_api):
    session = mixed_session()
    page = viewer_api.get(f"/api/sessions/{session.pk}/timeseries/").json()["results"]
    assert [page[0]["resolution_s"], page[1]["resolution_s"], page[-1]["resolution_s"]] == [
        HOUR_S, MINUTE_S, 1,
    ]  # fmt: skip
    assert [page[0]["requests_per_s"], page[1]["requests_per_s"], page[-1]["requests_per_s"]] == [
        5.0, 10.0, 20.0,
    ]  # fmt: skip
    csv = viewer_api.get(
        f"/api/sessions/{session.pk}/export/", {"format": "csv", "table": "timeseries"}
    ).content.decode()
    header, first = csv.splitlines()[:2]
    columns = dict(zip(header.split(","), first.split(","), strict=False))
    assert columns["resolution_s"] == "3600" and columns["requests"] == "18000"
    assert float(columns["requests_per_s"]) == 5.0


def test_cutoffs_never_roll_up_the_last_hour_even_with_zero_minute_days():
    now = at(START_S + 10 * 86400 + 1234)
    with override_settings(TIMESERIES_MINUTE_DAYS=0):
        (minute, minute_cutoff), (hour, hour_cutoff) = downsampling.cutoffs(now)
    assert (minute, hour) == (MINUTE_S, HOUR_S)
    assert minute_cutoff <= now.timestamp() - 3600 and hour_cutoff <= minute_cutoff
