"""A session's thresholds judged on its stored figures: live by every monitor tick, and once
more at the end, after the last statistics have been copied.

The figures are the whole run so far (the cumulative per-endpoint rows the monitor keeps),
not a recent window: what a threshold promises is about the run, and the end's judgement is
on the same numbers. Live, a threshold is judged only once its scope has
THRESHOLD_MIN_REQUESTS requests (a handful of requests says little about a p95), and a
failing ``abort`` threshold then stops the session (end reason ``threshold_failed``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

from apps.sessions.integrations import webhooks
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import EndpointStats, LoadTestSession
from apps.sessions.models.choices import EndReason, EventKind, SessionStatus, WebhookEvent
from apps.sessions.results.records import record_event, record_threshold_results
from apps.sessions.results.thresholds import Figures, Verdict, judge, parse_thresholds
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


def judge_session(session: LoadTestSession, *, final: bool) -> list[Verdict]:
    thresholds = parse_thresholds(session.thresholds or [])
    if not thresholds:
        return []
    figures = session_figures(session)
    return [
        judge(threshold, figures, final=final, min_requests=settings.THRESHOLD_MIN_REQUESTS)
        for threshold in thresholds
    ]


def check_live(session: LoadTestSession) -> None:
    """A running session's tick: store each threshold's judgement, and stop the session
    when an ``abort`` threshold fails."""
    verdicts = judge_session(session, final=False)
    if not verdicts:
        return
    failed = [v for v in verdicts if v.passed is False and v.threshold.abort]
    aborting = bool(failed) and session.status == SessionStatus.RUNNING
    now = timezone.now().isoformat()
    record_threshold_results(
        session.pk,
        [v.as_json(now, aborted=aborting and v in failed) for v in verdicts],
    )
    if aborting:
        detail = "; ".join(
            f"{v.threshold.expression} failed (observed {v.observed:.15g})" for v in failed
        )
        record_event(session.pk, EventKind.THRESHOLD_FAILED, detail)
        stop_session(session, reason=EndReason.THRESHOLD_FAILED, detail=detail)
        webhooks.notify(session.pk, WebhookEvent.THRESHOLD_FAILED, detail)


def check_final(session_id: int) -> None:
    """The end's judgement, on the complete figures. A threshold that stopped the session has
    failed, whatever the figures say once the load is gone: it keeps its ``aborted`` mark and
    its failure, with the value that failed it in the note."""
    session = LoadTestSession.objects.get(pk=session_id)
    aborted = {
        result["expression"]: result
        for result in session.threshold_results or []
        if result.get("aborted")
    }
    now = timezone.now().isoformat()
    results = []
    for verdict in judge_session(session, final=True):
        result = verdict.as_json(now, final=True)
        live = aborted.get(result["expression"])
        if live is not None:
            result["aborted"] = True
            result["passed"] = False
            result["note"] = f"failed live at {live['observed']:.15g}, which stopped the session"
        results.append(result)
    record_threshold_results(session_id, results, final=True)
    # Those that failed only now (an aborting one was announced when it stopped the session).
    failed_now = [
        result for result in results if result["passed"] is False and not result.get("aborted")
    ]
    if failed_now:
        detail = "; ".join(
            f"{result['expression']} failed "
            f"({result['note'] or 'observed ' + str(result['observed'])})"
            for result in failed_now
        )
        webhooks.notify(session_id, WebhookEvent.THRESHOLD_FAILED, detail)
