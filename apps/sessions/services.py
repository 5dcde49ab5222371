"""Every state change of a session happens here, whoever asks: API, admin, CLI or a task.

Transitions are conditional UPDATEs on the status column, so two callers racing (a user's
stop and the monitor's end of duration, say) cannot both win; the loser sees the row as it
is now. Each change records who asked and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from redis.exceptions import RedisError

from . import history
from .choices import ACTIVE_STATUSES, EndReason, EventKind, SessionStatus
from .models import Endpoint, LoadTestSession, SessionEvent, Target
from .validation import (
    check_concurrent_users,
    check_endpoint_url,
    check_target_url,
    effective_weights,
)

logger = logging.getLogger(__name__)

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "default_endpoints.json"


class SessionStateError(Exception):
    """The action conflicts with the session's current status (the API answers 409)."""


class EngineUnavailable(Exception):
    """Redis or the broker could not be reached, so load cannot start (the API answers 503)."""


# --- catalog ---------------------------------------------------------------------------------


def load_default_catalog(target: Target) -> int:
    """Add the seed app's endpoints (from the data file) that the target does not have yet."""
    created = 0
    for item in json.loads(DEFAULT_CATALOG.read_text()):
        _, was_created = Endpoint.objects.get_or_create(
            target=target,
            name=item["name"],
            defaults={
                "url": item["url"],
                "method": item.get("method", "GET"),
                "weight": item.get("weight", 1.0),
                "timeout_s": item.get("timeout", 30),
                "description": item.get("description", ""),
            },
        )
        created += was_created
    return created


def find_default_target() -> Target | None:
    return Target.objects.filter(base_url=settings.TARGET_APP_URL).order_by("pk").first()


def default_catalog_weights() -> dict[str, float]:
    """Endpoint name -> weight of the default catalog, for validating before it exists."""
    return {
        item["name"]: item.get("weight", 1.0) for item in json.loads(DEFAULT_CATALOG.read_text())
    }


def default_target() -> Target:
    """The target at TARGET_APP_URL, created with the default catalog on first use."""
    target = find_default_target()
    if target is not None:
        return target
    check_target_url(settings.TARGET_APP_URL)
    with transaction.atomic():
        name = "Default target"
        if Target.objects.filter(name=name).exists():
            name = f"Default target ({settings.TARGET_APP_URL})"
        target = Target.objects.create(
            name=name,
            base_url=settings.TARGET_APP_URL,
            description="The application at TARGET_APP_URL, with the demo app's endpoints.",
        )
        load_default_catalog(target)
    return target


# --- planning --------------------------------------------------------------------------------


def build_plan(session: LoadTestSession) -> dict:
    """The frozen, self-contained instructions every shard of the session executes.

    The allow-list is checked again here: the environment may have changed since the target
    was saved.
    """
    errors: dict[str, list[str]] = {}
    try:
        check_target_url(session.target.base_url)
    except ValidationError as exc:
        errors["target"] = exc.messages
    default_weights = dict(session.target.endpoints.values_list("name", "weight"))
    weights = effective_weights(default_weights, session.endpoint_weights)
    endpoints = []
    for endpoint in session.target.endpoints.order_by("name"):
        weight = weights[endpoint.name]
        if weight <= 0:
            continue
        try:
            check_endpoint_url(endpoint.url)
        except ValidationError as exc:
            errors.setdefault("endpoints", []).extend(
                f"{endpoint.name}: {message}" for message in exc.messages
            )
        endpoints.append(
            {
                "id": endpoint.pk,
                "name": endpoint.name,
                "method": endpoint.method,
                "url": endpoint.absolute_url(),
                "timeout_s": endpoint.timeout_s,
                "weight": weight,
                "headers": endpoint.headers,
                "body": endpoint.body,
            }
        )
    if not endpoints:
        errors.setdefault("endpoint_weights", []).append(
            "No endpoint of this target has a positive weight."
        )
    if errors:
        raise ValidationError(errors)
    return {
        "session_id": session.pk,
        "endpoints": endpoints,
        "request_interval_min": session.request_interval_min,
        "request_interval_max": session.request_interval_max,
        "target_rps": session.target_rps,
        "ramp_up_seconds": session.ramp_up_seconds,
        # Counted from the load's start (the first shard to run), not from now: shards may
        # wait in the queue for a free worker process.
        "duration_s": None if session.runs_until_stopped else float(session.duration_minutes) * 60,
    }


# --- lifecycle -------------------------------------------------------------------------------


def start_session(session: LoadTestSession, user=None) -> LoadTestSession:
    """pending -> starting: freeze the plan, publish it to Redis and queue the shards.

    Redis is asked first how many load worker processes are free: when it is unreachable that
    fails at once, before anything is claimed. The returned session carries ``warnings``
    (a list of sentences, not stored): today, that its shards will wait for free processes.
    """
    from apps.workers import control, dispatch, inventory

    if session.status != SessionStatus.PENDING:
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; only a pending session can be started."
        )
    check_total_users(session.concurrent_users)
    plan = build_plan(session)
    try:
        capacity = inventory.load_capacity(control.get_redis())
    except (RedisError, OSError) as exc:
        raise _cannot_queue(exc) from exc
    shards = len(dispatch.shard_targets(session.concurrent_users, session.target_rps))
    claimed = LoadTestSession.objects.filter(pk=session.pk, status=SessionStatus.PENDING).update(
        status=SessionStatus.STARTING, start_time=timezone.now(), started_by=user, plan=plan
    )
    if not claimed:
        session.refresh_from_db()
        raise SessionStateError(f"Session {session.pk} is already {session.status}.")
    try:
        dispatch.dispatch_session(session.pk, plan, session.concurrent_users, session.target_rps)
    except Exception as exc:
        logger.exception("Session %s: could not dispatch its shards", session.pk)
        _undo_start(session.pk)
        raise _cannot_queue(exc) from exc
    logger.info(
        "Session %s started by %s: %s users (%s model).",
        session.pk,
        user or "system",
        session.concurrent_users,
        session.pacing,
    )
    session.refresh_from_db()
    shortfall = capacity.shortfall_warning(shards)
    session.warnings = [shortfall] if shortfall else []
    return session


def _cannot_queue(exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(
        f"Could not queue the load: Redis or the Celery broker is unreachable ({exc}). Check "
        "REDIS_URL and that Redis is running; the session is still pending and can be started "
        "again."
    )


def check_total_users(additional_users: int) -> None:
    """MAX_TOTAL_USERS caps the users of all running sessions together."""
    limit = settings.MAX_TOTAL_USERS
    if not limit or additional_users <= 0:
        return
    running = (
        LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
            users=Sum("concurrent_users")
        )["users"]
        or 0
    )
    if running + additional_users > limit:
        raise ValidationError(
            {
                "concurrent_users": [
                    f"{running} users already run in other sessions; {additional_users} more "
                    f"would pass MAX_TOTAL_USERS ({limit})."
                ]
            }
        )


def delete_session(session: LoadTestSession) -> None:
    """Sessions that are not running can be deleted with their results; running ones first
    have to be stopped."""
    if session.is_active:
        raise SessionStateError(f"Session {session.pk} is {session.status}; stop it first.")
    session.delete()


def clone_session(session: LoadTestSession, user=None) -> LoadTestSession:
    """A new pending session with the same configuration, to run the same test again."""
    copied = {name: getattr(session, name) for name in LoadTestSession.CONFIG_FIELDS}
    copied["session_name"] = f"{session.session_name} (copy)"[:200]
    return LoadTestSession.objects.create(
        created_by=user if user is not None and user.is_authenticated else None, **copied
    )


def _undo_start(session_id: int) -> None:
    """Back to pending after a failed dispatch, so nothing is lost and a retry can start it.

    Anything that did reach Redis is withdrawn first: shards queued before the failure find
    no control state and exit without sending.
    """
    from apps.workers import control

    try:
        control.forget_session(control.get_redis(), session_id)
    except Exception:
        logger.warning("Session %s: could not withdraw a partial dispatch from Redis.", session_id)
    LoadTestSession.objects.filter(pk=session_id, status=SessionStatus.STARTING).update(
        status=SessionStatus.PENDING, start_time=None, started_by=None, plan=None
    )


def stop_session(
    session: LoadTestSession,
    user=None,
    reason: EndReason = EndReason.STOPPED_BY_USER,
    detail: str = "",
) -> LoadTestSession:
    """Ask every shard to stop; the monitor records the terminal status once they have.

    A session that never started is stopped at once. Stopping a stopping session is a no-op.
    """
    from apps.workers import control

    if session.status == SessionStatus.PENDING:
        ended = LoadTestSession.objects.filter(pk=session.pk, status=SessionStatus.PENDING).update(
            status=reason.final_status,
            end_time=timezone.now(),
            end_reason=reason,
            end_detail=detail,
            stopped_by=user,
        )
        if ended:
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
    LoadTestSession.objects.filter(pk=session.pk, status__in=ACTIVE_STATUSES).exclude(
        status=SessionStatus.STOPPING
    ).update(status=SessionStatus.STOPPING, end_reason=reason, end_detail=detail, stopped_by=user)
    logger.info("Session %s: stop requested by %s (%s).", session.pk, user or "system", reason)
    session.refresh_from_db()
    return session


def mark_running(session_id: int, load_started_at) -> bool:
    """starting -> running, once the first shard has begun sending, and when that was: the
    duration counts from then. The first time recorded stays (the row is the truth)."""
    LoadTestSession.objects.filter(pk=session_id, load_started_at__isnull=True).update(
        load_started_at=load_started_at
    )
    return bool(
        LoadTestSession.objects.filter(pk=session_id, status=SessionStatus.STARTING).update(
            status=SessionStatus.RUNNING
        )
    )


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


def finish_session(session_id: int, reason: EndReason, detail: str = "") -> bool:
    """An active session reaches its terminal status. Returns False if it had already ended.

    A reason recorded when the stop was requested wins over the one given here, so a user's
    stop reads "stopped by user" even though the monitor is the one finishing it.
    """
    session = LoadTestSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in ACTIVE_STATUSES:
        return False
    final_reason = EndReason(session.end_reason) if session.end_reason else EndReason(reason)
    updated = LoadTestSession.objects.filter(pk=session_id, status__in=ACTIVE_STATUSES).update(
        status=final_reason.final_status,
        end_reason=final_reason,
        end_detail=detail or session.end_detail,
        end_time=timezone.now(),
        status_detail="",
    )
    if updated:
        logger.info(
            "Session %s ended: %s (%s). %s",
            session_id,
            final_reason.final_status,
            final_reason,
            detail,
        )
    return bool(updated)


def record_event(session_id: int, kind: str, message: str, *, at=None, hostname="", shard=None):
    return SessionEvent.objects.create(
        session_id=session_id,
        at=at or timezone.now(),
        kind=kind,
        message=message,
        hostname=hostname,
        shard=shard,
    )


def change_users(
    session: LoadTestSession, concurrent_users: int, user=None, via: str = "api"
) -> LoadTestSession:
    """Change the load of a running session (the seed's adjust_worker_count).

    The new count is spread over shards at once: running shards adjust within a poll, new
    shards are queued, shards no longer needed retire. Validated like a new configuration.
    """
    from apps.workers import dispatch

    if session.status not in (SessionStatus.STARTING, SessionStatus.RUNNING):
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; users can change while it runs."
        )
    check_concurrent_users(concurrent_users)
    check_total_users(concurrent_users - session.concurrent_users)
    previous = session.concurrent_users
    before = history.snapshot(session)
    try:
        dispatch.resize_session(session.pk, concurrent_users, session.target_rps)
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis to change the load ({exc}). Check that Redis is running "
            "at REDIS_URL, then try again; the session keeps its current users."
        ) from exc
    LoadTestSession.objects.filter(pk=session.pk).update(concurrent_users=concurrent_users)
    session.refresh_from_db()
    history.record_changes(session, before, user=user, via=via)
    record_event(
        session.pk,
        EventKind.USERS_CHANGED,
        f"Users {previous} -> {concurrent_users} by {user or 'system'}.",
    )
    logger.info("Session %s: users %s -> %s by %s.", session.pk, previous, concurrent_users,
                user or "system")  # fmt: skip
    session.refresh_from_db()
    return session


def emergency_stop(user=None) -> list[int]:
    """Stop every active session on every worker, now. Returns the sessions stopped.

    A global flag stops every shard started before it within a poll, even one whose session
    the database no longer counts as active; then each active session is stopped as usual,
    recording who did it.
    """
    from apps.workers import control

    try:
        control.emergency_stop_all(control.get_redis())
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis for the emergency stop ({exc}). Check that Redis is "
            "running at REDIS_URL and call it again; meanwhile shards stop by themselves once "
            "they have lost Redis for longer than HEARTBEAT_TTL_S."
        ) from exc
    stopped = []
    for session in LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES):
        try:
            stop_session(session, user=user, reason=EndReason.EMERGENCY_STOP)
        except SessionStateError:
            continue  # it ended meanwhile
        stopped.append(session.pk)
    logger.warning("Emergency stop by %s: sessions %s.", user or "system", stopped)
    return stopped
