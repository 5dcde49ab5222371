"""The figures of one monitor tick: what the dashboard shows "now" and the tick's chart point."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum

from apps.sessions.models import LoadTestSession, TimeSeriesPoint
from apps.sessions.results.sync import TickGrowth

LIVE_ERROR_WINDOW_S = 10.0  # the live error rate's window


def tick_figures(growth: TickGrowth, heartbeats: dict[int, dict]) -> dict:
    """The per-tick fields of a ``TimeSeriesPoint``."""
    percentiles = growth.percentiles_ms()
    return {
        "p50_ms": percentiles[0.5],
        "p95_ms": percentiles[0.95],
        "p99_ms": percentiles[0.99],
        "users": sum(int(beat.get("users", 0)) for beat in heartbeats.values()),
        "failures_by_class": growth.failures_by_class,
    }


def live_figures(session, growth: TickGrowth, figures: dict, now, elapsed_s: float | None) -> dict:
    """The dashboard's figures "now": this tick's rates and percentiles, the last ~10 s's
    error rate, and the tick's point for appending to the charts."""
    elapsed_s = max(elapsed_s or settings.MONITOR_INTERVAL_S, 0.1)
    failures = sum(figures["failures_by_class"].values())
    window = window_totals(session, now, LIVE_ERROR_WINDOW_S)
    rps = round(growth.requests / elapsed_s, 2)
    failures_per_s = round(failures / elapsed_s, 2)
    percentiles = {name: figures[name] for name in ("p50_ms", "p95_ms", "p99_ms")}
    return {
        "live": {
            "rps": rps,
            "failures_per_s": failures_per_s,
            "error_rate": round(window["failures"] / window["requests"], 4)
            if window["requests"]
            else 0.0,
            **percentiles,
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
