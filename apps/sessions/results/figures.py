"""A run's figures, computed in one place from the stored counters and histograms: every
surface (the session page, the sessions list, the report, the comparison, thresholds,
/metrics, the CLI summary, JUnit) asks here, so one run shows one p50/p95/p99 everywhere.

The figures are the whole run so far (the cumulative per-endpoint rows the monitor keeps).
A scope of several endpoints takes its percentiles from their histograms merged, never from
an average of percentiles."""

from __future__ import annotations

from collections.abc import Iterable

from apps.sessions.models import EndpointStats, LoadTestSession
from apps.sessions.results.thresholds import Figures
from apps.workers.histogram import percentiles_ms

QUANTILES = {0.5: "p50_ms", 0.9: "p90_ms", 0.95: "p95_ms", 0.99: "p99_ms"}


def merged_histogram(rows: Iterable[EndpointStats]) -> dict[int, int]:
    """The endpoints' latency histograms added up (bucket index -> count): the scope's own
    distribution, from which any percentile follows."""
    histogram: dict[int, int] = {}
    for row in rows:
        for bucket, count in (row.histogram or {}).items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    return histogram


def scope_figures(rows: Iterable[EndpointStats], elapsed_s: float) -> Figures:
    """One scope's figures from its endpoints' rows: their histograms merged, so that the
    session's percentiles are those of all its requests, not an average of percentiles."""
    rows = list(rows)
    requests = sum(row.requests for row in rows)
    histogram = merged_histogram(rows)
    timed = [row for row in rows if row.mean_ms is not None and row.requests]
    timed_requests = sum(row.requests for row in timed)
    mean_ms = (
        sum(row.mean_ms * row.requests for row in timed) / timed_requests
        if timed_requests
        else None
    )
    maxima = [row.max_ms for row in rows if row.max_ms is not None]
    minima = [row.min_ms for row in rows if row.min_ms is not None]
    if len(rows) == 1:
        row = rows[0]
        percentiles = {name: getattr(row, name) for name in QUANTILES.values()}
    else:
        found = percentiles_ms(
            histogram,
            QUANTILES,
            min_us=int(min(minima) * 1000) if minima else None,
            max_us=int(max(maxima) * 1000) if maxima else None,
        )
        percentiles = {name: found[quantile] for quantile, name in QUANTILES.items()}
    return Figures(
        requests=requests,
        failures=sum(row.failures for row in rows),
        elapsed_s=elapsed_s,
        mean_ms=mean_ms,
        max_ms=max(maxima) if maxima else None,
        **percentiles,
    )


def whole_session_figures(session: LoadTestSession) -> Figures:
    """The whole session's figures alone (a row of the history list): from its endpoint
    rows, prefetched by the caller or read here."""
    return scope_figures(session.endpoint_stats.all(), session.elapsed_seconds())


def session_figures(session: LoadTestSession) -> dict[str | None, Figures]:
    """Figures by scope: None for the whole session, then each endpoint by name."""
    rows = list(session.endpoint_stats.all())
    elapsed_s = session.elapsed_seconds()
    figures: dict[str | None, Figures] = {None: scope_figures(rows, elapsed_s)}
    for row in rows:
        figures[row.name] = scope_figures([row], elapsed_s)
    return figures
