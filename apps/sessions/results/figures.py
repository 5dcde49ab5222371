"""A run's figures, computed in one place from the stored counters and histograms.

Every surface (the session page, the sessions list, the report, the comparison, thresholds,
/metrics, the CLI summary, JUnit, webhooks) asks here, so one run shows one p50/p95/p99, one
request rate and one error rate everywhere, rounded once (``RunFigures.as_dict``).

The figures are the whole run so far (the cumulative per-endpoint rows the monitor keeps). A
scope of several endpoints takes its percentiles from their histograms merged, never from an
average of percentiles. No model is imported at run time: the thresholds' syntax check (run by
the models' validators) reads this module's type, so it must not import the models back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.workers.histogram import percentiles_ms

if TYPE_CHECKING:
    from apps.sessions.models import EndpointStats, LoadTestSession

# The percentiles a run's figures carry, by quantile.
QUANTILES = {0.5: "p50_ms", 0.9: "p90_ms", 0.95: "p95_ms", 0.99: "p99_ms", 0.999: "p999_ms"}
# How many decimals each kind of figure keeps when it is shown or sent: one rounding for all.
RATE_DIGITS = 2  # requests per second
ERROR_RATE_DIGITS = 6  # a fraction (0.012345 is 1.2345 %)
MS_DIGITS = 3  # latencies in milliseconds (microsecond resolution)
SECONDS_DIGITS = 3


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class RunFigures:
    """One scope's figures (the whole run, or one endpoint), as every surface shows them.

    ``duration_s`` is the seconds of load the rate is over (from the load's start to its end,
    or to now while it runs). Latencies are None while nothing has completed.

    Two parts of ``requests`` are counted apart: ``cut_by_stop``, requests a stop cut before
    their answer (sent, but neither a success nor a failure of the target's: left out of the
    error rate), and ``unreached``, attempts whose bytes never reached the target (refused,
    connect timeout, DNS; failures the user wants to see, or cut while connecting).
    ``requests - unreached`` is what the target received.
    """

    requests: int
    failures: int
    duration_s: float
    failures_by_class: Mapping[str, int] = field(default_factory=dict)
    cut_by_stop: int = 0
    unreached: int = 0
    min_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None

    @property
    def rps(self) -> float | None:
        """Requests per second over ``duration_s``; None before the load has started."""
        return self.requests / self.duration_s if self.duration_s > 0 else None

    @property
    def judged(self) -> int:
        """The requests that ended as a success or a failure: all but those a stop cut."""
        return self.requests - self.cut_by_stop

    @property
    def error_rate(self) -> float | None:
        """Failures / requests that ended (a stop's cut ones are neither); None before any."""
        return self.failures / self.judged if self.judged > 0 else None

    def error_rate_by_class(self) -> dict[str, float]:
        if self.judged <= 0:
            return {}
        return {name: count / self.judged for name, count in sorted(self.failures_by_class.items())}

    def observe(self, metric: str) -> float | None:
        """The value a threshold's ``metric`` names (``p95_ms``, ``rps``, ``error_rate``...),
        rounded as every surface shows it: a verdict's "observed" is the figure a person
        reads on the page."""
        value = self.as_dict()[metric]
        return None if value is None else float(value)

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON shows them (the API, the report, the comparison, webhooks),
        each kind rounded once."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "cut_by_stop": self.cut_by_stop,
            "unreached": self.unreached,
            "duration_s": round(self.duration_s, SECONDS_DIGITS),
            "rps": _round(self.rps, RATE_DIGITS),
            "error_rate": _round(self.error_rate, ERROR_RATE_DIGITS),
            "error_rate_by_class": {
                name: round(rate, ERROR_RATE_DIGITS)
                for name, rate in self.error_rate_by_class().items()
            },
            **{
                name: _round(getattr(self, name), MS_DIGITS)
                for name in ("min_ms", "mean_ms", "max_ms", *QUANTILES.values())
            },
        }


def merged_histogram(rows: Iterable[EndpointStats]) -> dict[int, int]:
    """The endpoints' latency histograms added up (bucket index -> count): the scope's own
    distribution, from which any percentile follows."""
    histogram: dict[int, int] = {}
    for row in rows:
        for bucket, count in (row.histogram or {}).items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    return histogram


def sum_counts(dicts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Add up name -> count dicts (the endpoints' failures by class, or ``not_sent``)."""
    total: dict[str, int] = {}
    for counts in dicts:
        for name, count in counts.items():
            total[name] = total.get(name, 0) + int(count)
    return total


def scope_figures(rows: Iterable[EndpointStats], duration_s: float) -> RunFigures:
    """One scope's figures from its endpoints' rows: their histograms merged, so that the
    session's percentiles are those of all its requests, not an average of percentiles."""
    rows = list(rows)
    requests = sum(row.requests for row in rows)
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
        # The row's own percentiles, computed from the same histogram when it was copied.
        percentiles = {name: getattr(rows[0], name) for name in QUANTILES.values()}
    else:
        found = percentiles_ms(
            merged_histogram(rows),
            QUANTILES,
            min_us=int(min(minima) * 1000) if minima else None,
            max_us=int(max(maxima) * 1000) if maxima else None,
        )
        percentiles = {name: found[quantile] for quantile, name in QUANTILES.items()}
    return RunFigures(
        requests=requests,
        failures=sum(row.failures for row in rows),
        duration_s=duration_s,
        failures_by_class=sum_counts(row.failures_by_class or {} for row in rows),
        cut_by_stop=sum(row.cut_by_stop for row in rows),
        unreached=sum(row.unreached for row in rows),
        min_ms=min(minima) if minima else None,
        mean_ms=mean_ms,
        max_ms=max(maxima) if maxima else None,
        **percentiles,
    )


def run_figures(session: LoadTestSession) -> RunFigures:
    """The whole run's figures: all its endpoints together (rows prefetched by the caller,
    as the sessions list does, or read here)."""
    return scope_figures(session.endpoint_stats.all(), session.duration_s())


def figures_by_scope(session: LoadTestSession) -> dict[str | None, RunFigures]:
    """Figures by scope: None for the whole run, then each endpoint by name."""
    rows = list(session.endpoint_stats.all())
    duration_s = session.duration_s()
    figures: dict[str | None, RunFigures] = {None: scope_figures(rows, duration_s)}
    for row in rows:
        figures[row.name] = scope_figures([row], duration_s)
    return figures
