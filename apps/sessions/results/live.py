"""The figures of one monitor tick: what the dashboard shows "now" and the tick's chart point.

Live latency percentiles cover a sliding window of answers, not the last tick: at eight
answers a second one tick's p95 and p99 are both its slowest answer, and the line jumps with
every slow request. The window is LIVE_WINDOW_S (10 s, as Locust's "current" percentiles),
stretched back up to LIVE_WINDOW_MAX_S while it holds too few answers for p99 to differ from
the maximum; a percentile that the answers still cannot tell apart from the maximum is left
out (None) rather than drawn as the maximum. The histograms come from what the shards send
already: each tick's growth, kept in Redis for the window's length.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum

from apps.sessions.models import LoadTestSession, TimeSeriesPoint
from apps.sessions.results.sync import TICK_QUANTILES, TickGrowth
from apps.workers.control import ORPHAN_TTL_S, SessionKeys
from apps.workers.histogram import percentiles_ms

LIVE_ERROR_WINDOW_S = 10.0  # the live error rate's window


def answers_needed(quantile: float) -> int:
    """The fewest answers whose ``quantile`` (nearest rank) can be below the maximum:
    p50 needs 2, p95 20, p99 100."""
    return math.ceil(round(1 / (1 - quantile), 6))


@dataclass(frozen=True)
class LatencyWindow:
    """The latency percentiles of the answers in the window that ends at this tick."""

    seconds: float  # how far back the window reaches
    answers: int
    percentiles: dict[float, float | None]  # None: no answer, or too few to tell apart

    def as_dict(self) -> dict:
        return {
            "p50_ms": self.percentiles[0.5],
            "p95_ms": self.percentiles[0.95],
            "p99_ms": self.percentiles[0.99],
            "latency_window_s": round(self.seconds, 1),
            "latency_answers": self.answers,
        }


def latency_window(client, session_id: int, growth: TickGrowth, since_s: float,
                   now_s: float) -> LatencyWindow:  # fmt: skip
    """Add this tick's histogram (the answers between ``since_s`` and ``now_s``) to the
    session's recent ones in Redis and compute the window's percentiles from them."""
    key = SessionKeys(session_id).latency_window
    entry = json.dumps([since_s, now_s, {str(b): n for b, n in growth.histogram.items()}])
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(key, entry)
        pipe.expire(key, ORPHAN_TTL_S)
        pipe.lrange(key, 0, -1)
        *_, raw = pipe.execute()
    ticks = [json.loads(item) for item in raw]
    too_old = sum(1 for _, to_s, _ in ticks if to_s < now_s - settings.LIVE_WINDOW_MAX_S)
    if too_old:
        client.ltrim(key, too_old, -1)
    return merge_window(ticks[too_old:], now_s)


def merge_window(ticks: list, now_s: float) -> LatencyWindow:
    """The newest ticks merged back to LIVE_WINDOW_S, or further (up to LIVE_WINDOW_MAX_S)
    until they hold enough answers for every quantile the charts draw."""
    enough = max(answers_needed(q) for q in TICK_QUANTILES)
    histogram: dict[int, int] = {}
    answers, start_s = 0, now_s
    for since_s, _, counts in reversed(ticks):
        if answers and now_s - since_s > settings.LIVE_WINDOW_MAX_S:
            break
        if now_s - start_s >= settings.LIVE_WINDOW_S and answers >= enough:
            break
        for bucket, count in counts.items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
            answers += count
        start_s = min(start_s, since_s)
    percentiles = percentiles_ms(histogram, TICK_QUANTILES)
    return LatencyWindow(
        seconds=now_s - start_s,
        answers=answers,
        percentiles={
            q: value if answers >= answers_needed(q) else None for q, value in percentiles.items()
        },
    )


def tick_figures(window: LatencyWindow, growth: TickGrowth, heartbeats: dict[int, dict]) -> dict:
    """The per-tick fields of a ``TimeSeriesPoint``."""
    return {
        "p50_ms": window.percentiles[0.5],
        "p95_ms": window.percentiles[0.95],
        "p99_ms": window.percentiles[0.99],
        "users": sum(int(beat.get("users", 0)) for beat in heartbeats.values()),
        "failures_by_class": growth.failures_by_class,
    }


def live_figures(session, growth: TickGrowth, window: LatencyWindow, figures: dict, now,
                 elapsed_s: float | None) -> dict:  # fmt: skip
    """The dashboard's figures "now": this tick's rates, the window's percentiles, the last
    ~10 s's error rate, and the tick's point for appending to the charts."""
    elapsed_s = max(elapsed_s or settings.MONITOR_INTERVAL_S, 0.1)
    failures = sum(figures["failures_by_class"].values())
    rps = round(growth.requests / elapsed_s, 2)
    failures_per_s = round(failures / elapsed_s, 2)
    percentiles = {name: figures[name] for name in ("p50_ms", "p95_ms", "p99_ms")}
    errors = window_totals(session, now, LIVE_ERROR_WINDOW_S)
    return {
        "live": {
            "rps": rps,
            "failures_per_s": failures_per_s,
            "error_rate": round(errors["failures"] / errors["requests"], 4)
            if errors["requests"]
            else 0.0,
            "error_window_s": LIVE_ERROR_WINDOW_S,
            **window.as_dict(),
            "users": figures["users"],
        },
        "point": {
            "t": int(now.timestamp()),
            "rps": rps,
            "failures_per_s": failures_per_s,
            **percentiles,
            "users": figures["users"],
            "failures_by_class": figures["failures_by_class"],
        },
    }


def window_totals(session: LoadTestSession, now, seconds: float) -> dict[str, int]:
    totals = TimeSeriesPoint.objects.filter(
        session=session, timestamp__gte=now - timedelta(seconds=seconds)
    ).aggregate(
        requests=Sum("requests"),
        failures=Sum("failures"),
        unavailable=Sum("unavailable"),
        suppressed=Sum("suppressed"),
    )
    return {name: value or 0 for name, value in totals.items()}
