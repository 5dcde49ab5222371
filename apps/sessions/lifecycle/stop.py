"""Stopping load: one session (cooperatively, through its control state in Redis), every
session at once (the emergency stop), and load that no session row owns any more."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from apps.sessions.access.permissions import EMERGENCY_STOP, OPERATE_SESSIONS, require_permission
from apps.sessions.choices import (
    ACTIVE_STATUSES,
    END_REASON_ACTORS,
    EndReason,
    EventKind,
    SessionStatus,
    Via,
)
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.integrations import webhooks
from apps.sessions.lifecycle.transitions import move_status, queue_monitor_tick, record_ended
from apps.sessions.models import LoadTestSession
from apps.sessions.results.records import actor_name, record_event
from apps.workers import control

logger = logging.getLogger(__name__)


def stop_session(
    session: LoadTestSession,
    user=None,
    reason: EndReason = EndReason.STOPPED_BY_USER,
    detail: str = "",
    *,
    via: str = Via.SYSTEM,
) -> LoadTestSession:
    """Ask every shard to stop; the monitor records the terminal status once they have.

    A session that never started is stopped at once. Stopping a stopping session is a no-op.
    The request is a ``stop_requested`` event naming who (a user, or the reason's own
    actor: the duration, the error ceiling) and through which surface (``via``).
    """
    require_permission(user, OPERATE_SESSIONS, "stop sessions")
    return _stop(session, user, reason, detail, via)


def _stop(
    session: LoadTestSession, user, reason: EndReason, detail: str, via: str
) -> LoadTestSession:
    """``stop_session`` for a caller that has checked its own permission (the emergency stop)."""
    actor = actor_name(user, END_REASON_ACTORS.get(reason, "system"))
    if session.status == SessionStatus.PENDING:
        with transaction.atomic():  # the status and its events together
            ended = move_status(
                session.pk,
                (SessionStatus.PENDING,),
                reason.final_status,
                end_time=timezone.now(),
                end_reason=reason,
                end_detail=detail,
                stopped_by=user,
            )
            if ended:
                _record_stop(session.pk, reason, detail, actor, via)
                record_ended(session.pk, reason, detail, actor=actor, via=via)
        if ended:
            webhooks.notify_final(session.pk)
            session.refresh_from_db()
            return session
        session.refresh_from_db()
    if session.status == SessionStatus.STOPPING:
        return session
    if session.status not in ACTIVE_STATUSES:
        raise SessionStateError(f"Session {session.pk} has already ended ({session.status}).")
    # Redis first: that is what the shards watch, so the load stops as soon as possible.
    try:
        control.request_stop(control.get_redis(), session.pk)
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis to stop the load ({exc}). Check that Redis is running at "
            "REDIS_URL and stop again; meanwhile shards stop by themselves once they have "
            "lost Redis for longer than HEARTBEAT_TTL_S."
        ) from exc
    with transaction.atomic():
        moved = move_status(
            session.pk,
            (SessionStatus.STARTING, SessionStatus.RUNNING),
            SessionStatus.STOPPING,
            end_reason=reason,
            end_detail=detail,
            stopped_by=user,
        )
        if moved:  # of a stop racing with another, the winner's request is recorded
            _record_stop(session.pk, reason, detail, actor, via)
    queue_monitor_tick(session.pk)  # it ends the session as soon as the shards have stopped
    logger.info("Session %s: stop requested by %s (%s).", session.pk, actor, reason)
    session.refresh_from_db()
    return session


def _record_stop(session_id: int, reason: EndReason, detail: str, actor: str, via: str) -> None:
    kind = (
        EventKind.EMERGENCY_STOP if reason == EndReason.EMERGENCY_STOP else EventKind.STOP_REQUESTED
    )
    message = f"{reason.label}: {detail}" if detail else f"{reason.label}."
    record_event(session_id, kind, message, actor=actor, via=via)


def emergency_stop(user=None, *, via: str = Via.SYSTEM) -> list[int]:
    """Stop every active session on every worker, now. Returns the sessions stopped.

    A global flag stops every shard started before it within a poll, even one whose session
    the database no longer counts as active; the load of sessions whose row is gone is
    stopped and forgotten (``stop_orphan_load``); then each active session is stopped as
    usual, recording who did it.
    """
    require_permission(user, EMERGENCY_STOP, "use the emergency stop")
    try:
        control.emergency_stop_all(control.get_redis())
        orphans = stop_orphan_load()
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis for the emergency stop ({exc}). Check that Redis is "
            "running at REDIS_URL and call it again; meanwhile shards stop by themselves once "
            "they have lost Redis for longer than HEARTBEAT_TTL_S."
        ) from exc
    stopped = []
    for session in LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES):
        try:
            _stop(session, user, EndReason.EMERGENCY_STOP, "", via)
        except SessionStateError:
            continue  # it ended meanwhile
        stopped.append(session.pk)
    logger.warning("Emergency stop by %s: sessions %s; load without a session row: %s.",
                   user or "system", stopped, orphans)  # fmt: skip
    return stopped


def stop_orphan_load() -> list[int]:
    """Stop the shards of sessions whose row is gone and forget their Redis state.

    ``delete_session`` never deletes a running session, so this finds only rows removed
    behind the services' back (raw SQL, a restored backup, a bug): without its row nobody
    could stop that load. Beat runs it with every monitor pass, the emergency stop runs it
    too. Only a missing row counts: a session that has just ended keeps its Redis state until
    its monitor has copied the last counts. Returns the ids of the sessions stopped.
    """
    client = control.get_redis()
    dispatched = control.dispatched_session_ids(client)
    if not dispatched:
        return []
    existing = set(LoadTestSession.objects.filter(pk__in=dispatched).values_list("pk", flat=True))
    orphans = sorted(dispatched - existing)
    for session_id in orphans:
        # Stop first: the shards then stop within a poll even if forgetting fails halfway;
        # forgetting also takes their heartbeats off the workers' list.
        control.request_stop(client, session_id)
        control.forget_session(client, session_id)
        logger.warning(
            "Session %s has no database row: its load was stopped and its Redis state forgotten.",
            session_id,
        )
    return orphans
