"""Status moves: the one way a session's status changes (a conditional UPDATE along
SESSION_TRANSITIONS), and the monitor's outcomes (running, waiting, finished).

Transitions are conditional UPDATEs on the status column, so two callers racing (a user's
stop and the monitor's end of duration, say) cannot both win; the loser sees the row as it
is now."""

from __future__ import annotations

import logging
from collections.abc import Collection

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.sessions.choices import (
    ACTIVE_STATUSES,
    END_REASON_ACTORS,
    SESSION_TRANSITIONS,
    EndReason,
    EventKind,
    SessionStatus,
    Via,
    WebhookEvent,
)
from apps.sessions.integrations import newrelic, webhooks
from apps.sessions.models import LoadTestSession, SessionEvent
from apps.sessions.results.records import record_event
from loadtest_project import celery_app

logger = logging.getLogger(__name__)


def move_status(
    session_id: int, sources: Collection[SessionStatus], status: SessionStatus, **fields
) -> bool:
    """Move the session to ``status`` if it is in one of ``sources`` now, setting ``fields``
    too; returns whether it moved. The one way a status changes: a conditional UPDATE, so of
    two callers racing only one wins, and only along SESSION_TRANSITIONS."""
    forbidden = sorted(source for source in sources if status not in SESSION_TRANSITIONS[source])
    if forbidden:
        raise ValueError(f"A session cannot move from {forbidden} to {status!r}.")
    moved = LoadTestSession.objects.filter(pk=session_id, status__in=sources)
    return bool(moved.update(status=status, **fields))


# The monitor's tick, queued by name: the monitor calls these services, so they cannot import
# its task module (``apps/sessions/tasks.py`` registers the task under this name).
MONITOR_SESSION_TASK = "apps.sessions.tasks.monitor_session"

# The shortest span the monitor's timing gives a few ticks (a tick's lock, a queued tick's
# life, how late a tick may be before the monitor counts itself away): MONITOR_INTERVAL_S may
# be short (the tests use 0.5 s), a pass over a busy session or a busy control worker not.
MONITOR_TICKS_MIN_S = 5.0


def monitor_ticks_s(ticks: int) -> float:
    """``ticks`` monitor intervals in seconds, never less than MONITOR_TICKS_MIN_S."""
    return max(MONITOR_TICKS_MIN_S, ticks * settings.MONITOR_INTERVAL_S)


def queue_monitor_tick(session_id: int) -> None:
    """One monitor pass for the session, soon. Stale ticks expire rather than pile up while
    the control worker is down."""
    celery_app.send_task(MONITOR_SESSION_TASK, (session_id,), expires=monitor_ticks_s(5))


def mark_running(session_id: int, load_started_at) -> bool:
    """starting -> running, once the first shard has begun sending, and when that was: the
    duration counts from then. The first time recorded stays (the row is the truth)."""
    LoadTestSession.objects.filter(pk=session_id, load_started_at__isnull=True).update(
        load_started_at=load_started_at
    )
    with transaction.atomic():  # the status and its event together
        moved = move_status(session_id, (SessionStatus.STARTING,), SessionStatus.RUNNING)
        if moved:
            record_event(session_id, EventKind.LOAD_STARTED, "The first shard began sending.",
                         at=load_started_at)  # fmt: skip
    if moved:
        webhooks.notify(session_id, WebhookEvent.STARTED)
        newrelic.queue_marker(session_id, newrelic.START)
    return moved


def note_waiting(session_id: int, detail: str) -> None:
    """Say what an active session waits for (``status_detail``; "" once nothing holds it
    up), recording each new reason as an event."""
    changed = (
        LoadTestSession.objects.filter(pk=session_id, status__in=ACTIVE_STATUSES)
        .exclude(status_detail=detail)
        .update(status_detail=detail)
    )
    if changed and detail:
        logger.warning("Session %s: %s", session_id, detail)
        record_event(session_id, EventKind.WAITING_FOR_WORKERS, detail)


def finish_session(
    session_id: int, reason: EndReason, detail: str = "", *, notify: bool = True
) -> bool:
    """An active session reaches its terminal status. Returns False if it had already ended.

    A reason recorded when the stop was requested wins over the one given here, so a user's
    stop reads "stopped by user" even though the monitor is the one finishing it. The
    webhooks hear of it here unless the caller (``notify=False``) tells them itself, once it
    has copied the last statistics into the summary they receive.
    """
    session = LoadTestSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in ACTIVE_STATUSES:
        return False
    final_reason = EndReason(session.end_reason) if session.end_reason else EndReason(reason)
    # The status and its event together: whoever sees the session ended finds why.
    with transaction.atomic():
        updated = move_status(
            session_id,
            ACTIVE_STATUSES,
            final_reason.final_status,
            end_reason=final_reason,
            end_detail=detail or session.end_detail,
            end_time=timezone.now(),
            status_detail="",
        )
        if updated:
            record_ended(session_id, final_reason, detail or session.end_detail)
    if updated:
        logger.info(
            "Session %s ended: %s (%s). %s",
            session_id,
            final_reason.final_status,
            final_reason,
            detail,
        )
        if notify:
            webhooks.notify_final(session_id)
            newrelic.queue_marker(session_id, newrelic.END)
    return bool(updated)


def record_ended(
    session_id: int, reason: EndReason, detail: str, *, actor: str = "", via: str = ""
) -> None:
    """The ``ended`` event: the end reason and its detail, by whoever asked for the stop
    (the latest stop request's actor and surface, when the monitor finishes a stopped
    session), else by the reason's own actor (the duration, when the shards ran it out by
    themselves) or the service itself."""
    if not actor:
        asked = (
            SessionEvent.objects.filter(
                session_id=session_id,
                kind__in=(EventKind.STOP_REQUESTED, EventKind.EMERGENCY_STOP),
            )
            .order_by("-at", "-pk")
            .first()
        )
        if asked:
            actor, via = asked.actor, asked.via
        else:
            actor, via = END_REASON_ACTORS.get(reason, "system"), Via.SYSTEM
    message = f"{reason.label} (status {reason.final_status.value})." + (
        f" {detail}" if detail else ""
    )
    record_event(session_id, EventKind.ENDED, message, actor=actor, via=via or Via.SYSTEM)
