"""Where a session starts: pending -> starting, its plan frozen, published and dispatched."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from redis.exceptions import RedisError

from apps.sessions.access.permissions import OPERATE_SESSIONS, require_permission
from apps.sessions.choices import ACTIVE_STATUSES, EventKind, SessionStatus, Via
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.lifecycle.transitions import move_status, queue_monitor_tick
from apps.sessions.models import LoadTestSession
from apps.sessions.results.records import actor_name, record_event
from apps.workers import control, dispatch, inventory

logger = logging.getLogger(__name__)


def start_session(session: LoadTestSession, user=None, *, via: str = Via.SYSTEM) -> LoadTestSession:
    """pending -> starting: freeze the plan, publish it to Redis and queue the shards;
    recorded as a ``started`` event with who and through which surface (``via``).

    Redis is asked first how many load worker processes are free: when it is unreachable that
    fails at once, before anything is claimed. The returned session carries ``warnings``
    (a list of sentences, not stored): today, that its shards will wait for free processes.
    """
    require_permission(user, OPERATE_SESSIONS, "start sessions")
    if session.status != SessionStatus.PENDING:
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; only a pending session can be started."
        )
    plan = build_plan(session)
    try:
        capacity = inventory.load_capacity(control.get_redis())
    except (RedisError, OSError) as exc:
        raise _cannot_queue(exc) from exc
    shards = len(dispatch.shard_shares(session.concurrent_users, session.target_rps))
    with users_claim():
        check_total_users(session.concurrent_users)
        claimed = move_status(
            session.pk,
            (SessionStatus.PENDING,),
            SessionStatus.STARTING,
            start_time=timezone.now(),
            started_by=user,
            plan=plan.to_json(),
        )
    if not claimed:
        session.refresh_from_db()
        raise SessionStateError(f"Session {session.pk} is already {session.status}.")
    try:
        dispatch.dispatch_session(session.pk, plan, session.concurrent_users, session.target_rps)
        queue_monitor_tick(session.pk)  # the first tick now; beat drives the rest
    except Exception as exc:
        logger.exception("Session %s: could not dispatch its shards", session.pk)
        _undo_start(session.pk)
        raise _cannot_queue(exc) from exc
    record_event(
        session.pk,
        EventKind.STARTED,
        f"{session.concurrent_users} users ({session.pacing} model) in {shards} shard(s) queued.",
        actor=actor_name(user),
        via=via,
    )
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


# The PostgreSQL advisory lock every claim of users holds (any fixed number, this one unused
# elsewhere): one per database, whichever web process or worker claims.
USERS_CLAIM_LOCK = 0x4C54_5553  # "LTUS"


@contextmanager
def users_claim() -> Iterator[None]:
    """One claim of users at a time, for the whole service: ``check_total_users`` and the
    write that adds the users (a start's claim, a resize) go inside, as one transaction.

    Without it two starts served side by side both count the same running users, both pass
    and together exceed MAX_TOTAL_USERS. SQLite takes its write lock when the transaction
    begins (``transaction_mode`` IMMEDIATE in settings), which serialises claims already;
    PostgreSQL reads at the start of each statement, so a transaction-scoped advisory lock
    makes the next claim wait until this one has committed what it added.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [USERS_CLAIM_LOCK])
        yield


def check_total_users(additional_users: int) -> None:
    """MAX_TOTAL_USERS caps the users of all running sessions together. Call it inside
    ``users_claim`` with the write that adds the users, or a parallel claim slips past."""
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


def _undo_start(session_id: int) -> None:
    """Back to pending after a failed dispatch, so nothing is lost and a retry can start it.

    Anything that did reach Redis is withdrawn first: shards queued before the failure find
    no control state and exit without sending.
    """
    try:
        control.forget_session(control.get_redis(), session_id)
    except Exception:
        logger.warning("Session %s: could not withdraw a partial dispatch from Redis.", session_id)
    move_status(
        session_id,
        (SessionStatus.STARTING,),
        SessionStatus.PENDING,
        start_time=None,
        started_by=None,
        plan=None,
    )
