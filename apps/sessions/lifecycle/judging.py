"""Thresholds judged as the session runs and once more at its end, and what a failure does:
a failing ``abort`` threshold stops the session (end reason ``threshold_failed``), and the
webhooks hear of every failure.

Live, each monitor tick stores every threshold's judgement; at the end the judgement is made
again on the complete figures, after the last statistics have been copied."""

from __future__ import annotations

from django.utils import timezone

from apps.sessions.choices import EndReason, EventKind, SessionStatus, WebhookEvent
from apps.sessions.integrations import webhooks
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import LoadTestSession
from apps.sessions.results import units
from apps.sessions.results.records import record_event, record_threshold_results
from apps.sessions.results.verdicts import judge_session


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
            f"{v.threshold.expression} failed "
            f"(observed {units.figure(v.threshold.metric, v.observed)})"
            for v in failed
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
            observed = units.figure(result["metric"], live["observed"])
            result["note"] = f"failed live at {observed}, which stopped the session"
        results.append(result)
    record_threshold_results(session_id, results, final=True)
    # Those that failed only now (an aborting one was announced when it stopped the session).
    failed_now = [
        result for result in results if result["passed"] is False and not result.get("aborted")
    ]
    if failed_now:
        detail = "; ".join(
            f"{result['expression']} failed ({result['note'] or _observed(result)})"
            for result in failed_now
        )
        webhooks.notify(session_id, WebhookEvent.THRESHOLD_FAILED, detail)


def _observed(result: dict) -> str:
    return f"observed {units.figure(result['metric'], result['observed'])}"
