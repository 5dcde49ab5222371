"""Figure k: database rows of a session that runs for a month, with the downsampler.

Time is simulated, not waited for: the per-second points the monitor would write (one a
second, with a tick's figures on each) are inserted interval by interval, and after each
interval the downsampler runs with ``now`` at the interval's end, as beat would run it every
DOWNSAMPLE_INTERVAL_S. Measures the rows kept against the rows written, the time each run
took, and checks that the totals stayed exact. Runs in the bench's own database.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Sum

from apps.sessions.models import LoadTestSession, Target, TimeSeriesPoint
from apps.sessions.results.downsampling import downsample_all

CLASSES = ("http_5xx", "network", "timeout")


def simulate(days: float, interval_s: int, seed: int = 30) -> dict:
    """A session running until stopped for ``days``, downsampled every ``interval_s``."""
    rng = random.Random(seed)
    start_s = (int(time.time()) - int(days * 86400)) // 3600 * 3600
    target, _ = Target.objects.get_or_create(name="bench-month", base_url="http://127.0.0.1:9")
    session = LoadTestSession.objects.create(
        session_name="a month until stopped",
        target=target,
        duration_minutes=0,
        status="running",
        start_time=datetime.fromtimestamp(start_s, tz=UTC),
        load_started_at=datetime.fromtimestamp(start_s, tz=UTC),
    )
    written = requests = failures = 0
    insert_s, runs_s = 0.0, []
    end_s = start_s + int(days * 86400)
    for interval_start in range(start_s, end_s, interval_s):
        began = time.perf_counter()
        seconds = range(interval_start, min(interval_start + interval_s, end_s))
        rows = [_row(session.pk, second, rng) for second in seconds]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(INSERT, rows)
        insert_s += time.perf_counter() - began
        written += len(rows)
        requests += sum(row[3] for row in rows)
        failures += sum(row[4] for row in rows)
        now = datetime.fromtimestamp(interval_start + interval_s, tz=UTC)
        runs_s.append(downsample_all(now=now).seconds)
    kept = session.timeseries.aggregate(requests=Sum("requests"), failures=Sum("failures"))
    by_resolution = {
        resolution: session.timeseries.filter(resolution_s=resolution).count()
        for resolution in (1, 60, 3600)
    }
    return {
        "days": days,
        "interval_s": interval_s,
        "rows_written": written,
        "rows_kept": sum(by_resolution.values()),
        "by_resolution": by_resolution,
        "totals_exact": (kept["requests"], kept["failures"]) == (requests, failures),
        "runs": len(runs_s),
        "run_median_s": statistics.median(runs_s),
        "run_max_s": max(runs_s),
        "runs_total_s": sum(runs_s),
        "insert_s": insert_s,
    }


_COLUMNS = ("session_id", "timestamp", "resolution_s", "requests", "failures", "unavailable",
            "suppressed", "latency_sum_ms", "p50_ms", "p95_ms", "p99_ms", "users",
            "failures_by_class")  # fmt: skip
# Written with the cursor: the ORM's bulk_create took ten times longer than the downsampler
# to produce the month's 2.6 million rows, and the bench measures the downsampler.
INSERT = (
    f"INSERT INTO {TimeSeriesPoint._meta.db_table} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
)


def _row(session_id: int, second: int, rng: random.Random) -> tuple:
    """One second as the monitor writes it: counts, and its tick's figures."""
    by_class = {name: rng.randrange(1, 4) for name in CLASSES if rng.random() < 0.1}
    failed = sum(by_class.values())
    sent = rng.randrange(80, 120) + failed
    timestamp = connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(second, tz=UTC))
    unavailable = by_class.get("network", 0) + by_class.get("timeout", 0)
    return (session_id, timestamp, 1, sent, failed, unavailable, 0, sent * rng.uniform(20, 60),
            rng.uniform(20, 40), rng.uniform(60, 120), rng.uniform(120, 400), 50,
            json.dumps(by_class))  # fmt: skip
