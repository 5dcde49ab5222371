"""Runs side by side: each session's figures per endpoint, their deltas against a reference
run (the first one asked for, or the target's baseline), and whether a run regressed.

Every figure comes from the stored results, so any two finished runs stay comparable however
old: counts from the per-endpoint rows, percentiles from their merged latency histograms
(``figures.scope_figures``: the numbers every surface shows and thresholds judge), requests/s
over the load's own duration (from the first shard's start to the end, not from the start call).

Better or worse: lower latency and error rate are better, higher requests/s is better. A
figure has *regressed* when it is worse than the reference's

- by more than the margin, in percent of the reference's value (``REGRESSION_MARGIN_PCT``,
  or the target's own ``regression_margin_pct``), and
- by more than its absolute floor (``ABSOLUTE_FLOORS``): an error rate must rise by more than
  1 percentage point and a latency by more than 1 ms. Relative changes of tiny numbers are
  noise: an error rate from 0 to 0.1 % is an infinite relative rise, and a p99 from 0.4 to
  0.9 ms on a local target more than doubles, yet neither should fail a build. Against a
  reference of 0 (no errors at all) only the floor applies.

A scope is judged only when both runs have at least ``THRESHOLD_MIN_REQUESTS`` requests in
it, the same minimum thresholds wait for: a handful of requests says little about a p95. A
change within ``SAME_WITHIN`` (0.5 %, about the histogram's resolution) is "same".

Like with like: the comparison first lists how the runs' load differed (``configuration``:
users at the start and the end, the endpoint mix, the model and rate, think time, ramp-up,
target, and, shown only, the durations). Twice the users give a higher request rate and
usually a slower p50 on the same code, so a run whose load differed from the reference's
gets no verdict at all, only the reason in words; its deltas are still shown.

Pure apart from reading the rows: ``delta`` and ``compare_scope`` take plain figures, so the
arithmetic is tested on hand-made numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from apps.sessions.choices import SessionStatus
from apps.sessions.models import EndpointStats, LoadTestSession
from apps.sessions.results import units
from apps.sessions.results.configuration import (
    differences,
    load_differences,
    run_configuration,
)
from apps.sessions.results.figures import figures_by_scope, merged_histogram
from apps.workers.histogram import percentile_curve, percentiles_ms

# Whether a higher value is better, for each compared figure (the judged ones).
HIGHER_IS_BETTER: dict[str, bool] = {
    "rps": True,
    "error_rate": False,
    "p50_ms": False,
    "p95_ms": False,
    "p99_ms": False,
}
METRICS = tuple(HIGHER_IS_BETTER)
# How much worse, in the figure's own unit, a figure must get before it can be a regression.
ABSOLUTE_FLOORS: dict[str, float] = {
    "rps": 0.0,
    "error_rate": 0.01,  # 1 percentage point
    "p50_ms": 1.0,
    "p95_ms": 1.0,
    "p99_ms": 1.0,
}
SAME_WITHIN = 0.005
BETTER, WORSE, SAME = "better", "worse", "same"
# A run's verdict against the reference.
REFERENCE, REGRESSION, NO_REGRESSION, NOT_JUDGED = (
    "reference",
    "regression",
    "no regression",
    "not judged",
)
# The statuses of a run whose figures are complete and may serve as a baseline.
FINISHED_STATUSES = (SessionStatus.COMPLETED, SessionStatus.STOPPED)

# One scope's figures as ``RunFigures.as_dict`` gives them: what the deltas are taken on.
FigureValues = dict[str, Any]


# --- one run's figures -----------------------------------------------------------------------


def session_scopes(session: LoadTestSession) -> dict[str | None, FigureValues]:
    """Figures by scope (None for all endpoints together, then each endpoint by name), as
    every surface shows them (``results.figures``)."""
    return {scope: figures.as_dict() for scope, figures in figures_by_scope(session).items()}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --- deltas and regressions (pure) ----------------------------------------------------------


def delta(metric: str, reference: float | None, value: float | None, margin_pct: float,
          *, judged: bool = True) -> dict[str, Any]:  # fmt: skip
    """How ``value`` differs from ``reference`` for ``metric``: absolute, relative (a
    fraction; None against a reference of 0), its direction, and whether it regressed."""
    if reference is None or value is None:
        return {"absolute": None, "relative": None, "direction": None, "regressed": False}
    absolute = value - reference
    relative = absolute / reference if reference else None
    higher_is_better = HIGHER_IS_BETTER.get(metric.split(":")[0], False)
    if absolute == 0 or abs(absolute) <= SAME_WITHIN * abs(reference):
        direction = SAME
    else:
        direction = BETTER if (absolute > 0) == higher_is_better else WORSE
    worse_by = -absolute if higher_is_better else absolute
    regressed = (
        judged
        and metric in HIGHER_IS_BETTER
        and direction == WORSE
        and worse_by > ABSOLUTE_FLOORS[metric]
        and (reference == 0 or worse_by / abs(reference) * 100 > margin_pct)
    )
    return {
        "absolute": round(absolute, 6),
        "relative": None if relative is None else round(relative, 6),
        "direction": direction,
        "regressed": regressed,
    }


def compare_scope(reference: FigureValues | None, figures: FigureValues | None, margin_pct: float,
                  min_requests: int, *, same_load: bool = True) -> dict[str, Any]:  # fmt: skip
    """One scope of one run against the reference's: the deltas of every figure (and of
    the error rate of each failure class, shown but not judged) and what regressed (nothing
    when the runs' load differed: their figures are shown, not judged)."""
    if reference is None or figures is None:
        return {
            "deltas": None,
            "error_rate_by_class": None,
            "judged": False,
            "note": "not in the reference run" if reference is None else "not in this run",
            "regressed": [],
        }
    enough = reference["requests"] >= min_requests and figures["requests"] >= min_requests
    judged = enough and same_load
    deltas = {
        metric: delta(metric, reference[metric], figures[metric], margin_pct, judged=judged)
        for metric in METRICS
    }
    classes = sorted(set(reference["error_rate_by_class"]) | set(figures["error_rate_by_class"]))
    by_class = {
        name: delta(
            f"error_rate:{name}",
            reference["error_rate_by_class"].get(name, 0.0),
            figures["error_rate_by_class"].get(name, 0.0),
            margin_pct,
            judged=False,
        )
        for name in classes
    }
    return {
        "deltas": deltas,
        "error_rate_by_class": by_class,
        "judged": judged,
        "note": ""
        if judged
        else "not judged: the load differed"
        if not same_load
        else f"not judged: fewer than {min_requests} requests in one of the runs",
        "regressed": [metric for metric, change in deltas.items() if change["regressed"]],
    }


# --- several runs ---------------------------------------------------------------------------


def compare(
    sessions: Sequence[LoadTestSession],
    *,
    reference: LoadTestSession | None = None,
    margin_pct: float | None = None,
) -> dict[str, Any]:
    """``sessions`` side by side, each scope's figures with deltas against ``reference``
    (default: the first session), judged with ``margin_pct`` (default: the reference's
    target's margin) where the load was the same as the reference's."""
    reference = reference or sessions[0]
    if margin_pct is None:
        margin_pct = reference.target.margin_pct()
    min_requests = settings.THRESHOLD_MIN_REQUESTS
    scopes_by_session = {session.pk: session_scopes(session) for session in sessions}
    if reference.pk not in scopes_by_session:
        scopes_by_session[reference.pk] = session_scopes(reference)
    reference_scopes = scopes_by_session[reference.pk]
    configs = {session.pk: run_configuration(session) for session in sessions}
    if reference.pk not in configs:
        configs[reference.pk] = run_configuration(reference)
    # Why each run's load is not the reference's; a run with any reason gets no verdict.
    unlike = {
        session.pk: load_differences(configs[reference.pk], configs[session.pk])
        for session in sessions
    }
    names: list[str | None] = [None]
    for session in [reference, *sessions]:
        names += sorted(
            name for name in scopes_by_session[session.pk] if name is not None and name not in names
        )
    scopes = []
    regressions: dict[int, list[dict[str, Any]]] = {session.pk: [] for session in sessions}
    # A session none of whose scopes could be judged (too few requests) has no verdict: "no
    # regression" would read as a pass that nothing supports.
    judged: dict[int, bool] = {session.pk: False for session in sessions}
    for name in names:
        rows = []
        for session in sessions:
            figures = scopes_by_session[session.pk].get(name)
            row: dict[str, Any] = {"session": session.pk, "figures": figures}
            if session.pk == reference.pk:
                row.update(deltas=None, error_rate_by_class=None, judged=False,
                           note="reference", regressed=[])  # fmt: skip
            else:
                row.update(compare_scope(reference_scopes.get(name), figures, margin_pct,
                                         min_requests,
                                         same_load=not unlike[session.pk]))  # fmt: skip
                judged[session.pk] = judged[session.pk] or row["judged"]
                for metric in row["regressed"]:
                    regressions[session.pk].append(
                        regression_entry(name, metric, reference_scopes[name], row)
                    )
            rows.append(row)
        scopes.append({"endpoint": name, "rows": rows})
    # The reference first: the differences are told against it.
    ordered = [configs[reference.pk]] + [
        configs[session.pk] for session in sessions if session.pk != reference.pk
    ]
    return {
        "reference": reference.pk,
        "margin_pct": margin_pct,
        "min_requests": min_requests,
        "configurations": [config.as_dict() for config in ordered],
        "differences": differences(ordered),
        "sessions": [
            {
                **describe(session),
                "is_reference": session.pk == reference.pk,
                "same_load": not unlike[session.pk],
                "load_differences": unlike[session.pk],
                "regression": bool(regressions[session.pk]),
                "regressions": regressions[session.pk],
                "judged": judged[session.pk],
                **verdict(
                    session.pk == reference.pk,
                    unlike[session.pk],
                    regressions[session.pk],
                    judged[session.pk],
                    min_requests,
                ),
            }
            for session in sessions
        ],
        "scopes": scopes,
    }


def verdict(is_reference: bool, unlike: list[str], regressions: list[dict[str, Any]],
            judged: bool, min_requests: int) -> dict[str, str]:  # fmt: skip
    """A run's verdict against the reference and its reason, in words."""
    if is_reference:
        return {
            "verdict": REFERENCE,
            "verdict_reason": "the reference the others are compared with",
        }
    if unlike:
        return {
            "verdict": NOT_JUDGED,
            "verdict_reason": "; ".join(unlike) + "; a verdict needs runs of the same load",
        }
    if regressions:
        return {
            "verdict": REGRESSION,
            "verdict_reason": "; ".join(entry["text"] for entry in regressions),
        }
    if not judged:
        return {
            "verdict": NOT_JUDGED,
            "verdict_reason": f"fewer than {min_requests:,} requests in one of the runs: "
            "too few to judge (run longer or with more users)",
        }
    return {
        "verdict": NO_REGRESSION,
        "verdict_reason": "no figure worse than the reference's by more than the margin",
    }


def regression_entry(endpoint: str | None, metric: str, reference: FigureValues,
                     row: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One regressed figure: the numbers for machines, and in ``text`` the change in words
    with units ("all endpoints: p50 up 34 % (+42.1 ms)")."""
    change = row["deltas"][metric]
    before, after = reference[metric], row["figures"][metric]
    scope = endpoint if endpoint is not None else "all endpoints"
    return {
        "endpoint": endpoint,
        "metric": metric,
        "reference": before,
        "value": after,
        "absolute": change["absolute"],
        "relative": change["relative"],
        "text": f"{scope}: {units.change(metric, before, after)}",
    }


def describe(session: LoadTestSession) -> dict[str, Any]:
    return {
        "id": session.pk,
        "session_name": session.session_name,
        "status": session.status,
        "target": session.target_id,
        "target_name": session.target.name,
        "load_started_at": session.load_started_at,
        "end_time": session.end_time,
        "duration_s": round(session.duration_s(), 3),
    }


# --- against the target's baseline ----------------------------------------------------------


def is_finished(session: LoadTestSession) -> bool:
    return session.status in FINISHED_STATUSES


def against_baseline(
    session: LoadTestSession, baseline: LoadTestSession | None = None
) -> dict[str, Any] | None:
    """``session``'s deltas against ``baseline`` (default: its target's), with the verdict;
    None when there is nothing to compare: the session is not finished, its target has no
    baseline, or it is the baseline itself."""
    if baseline is None:
        baseline = session.target.baseline_session
    if baseline is None or baseline.pk == session.pk or not is_finished(session):
        return None
    result = compare([baseline, session], reference=baseline,
                     margin_pct=session.target.margin_pct())  # fmt: skip
    summary = result["sessions"][1]
    return {
        "baseline": baseline.pk,
        "baseline_name": baseline.session_name,
        "margin_pct": result["margin_pct"],
        "min_requests": result["min_requests"],
        "regression": summary["regression"],
        "regressions": summary["regressions"],
        "judged": summary["judged"],
        "same_load": summary["same_load"],
        "load_differences": summary["load_differences"],
        "verdict": summary["verdict"],
        "verdict_reason": summary["verdict_reason"],
        "differences": result["differences"],
        "endpoints": [
            {
                "endpoint": scope["endpoint"],
                "baseline": scope["rows"][0]["figures"],
                **scope["rows"][1],
            }
            for scope in result["scopes"]
        ],
    }


# --- latency distributions ------------------------------------------------------------------


def distribution(session: LoadTestSession, quantiles: Sequence[float] = ()) -> list[dict[str, Any]]:
    """Each scope's percentile curve (quantile, ms) from its stored histogram, all
    endpoints first; with ``quantiles``, the latency at each of those too."""
    rows = list(session.endpoint_stats.all())
    scopes: list[tuple[str | None, list[EndpointStats]]] = [(None, rows)]
    scopes += [(row.name, [row]) for row in rows]
    result = []
    for name, scoped in scopes:
        histogram = merged_histogram(scoped)
        minima = [row.min_ms for row in scoped if row.min_ms is not None]
        maxima = [row.max_ms for row in scoped if row.max_ms is not None]
        bounds = {
            "min_us": int(min(minima) * 1000) if minima else None,
            "max_us": int(max(maxima) * 1000) if maxima else None,
        }
        entry: dict[str, Any] = {
            "endpoint": name,
            "recorded": sum(histogram.values()),
            "curve": [[q, round(ms, 3)] for q, ms in percentile_curve(histogram, **bounds)],
        }
        if quantiles:
            found = percentiles_ms(histogram, quantiles, **bounds) if histogram else {}
            entry["quantiles"] = {
                f"{q:g}": _round(found.get(q), 3) if histogram else None for q in quantiles
            }
        result.append(entry)
    return result
