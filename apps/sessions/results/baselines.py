"""A target's baseline: the finished run later runs are compared against."""

from __future__ import annotations

from django.db import transaction

from apps.sessions.access import config_history
from apps.sessions.access.permissions import OPERATE_SESSIONS, require_permission
from apps.sessions.choices import SessionStatus
from apps.sessions.errors import SessionStateError
from apps.sessions.models import LoadTestSession, Target

# A run compared against must have complete figures: one that ended normally or was stopped.
BASELINE_STATUSES = (SessionStatus.COMPLETED, SessionStatus.STOPPED)


def set_baseline(session: LoadTestSession, user=None, via: str = "api") -> Target:
    """Make ``session`` its target's baseline: later finished runs on the target show their
    deltas against it and are judged for regressions (``comparison``). Only a finished run
    with results can be one; the change is in the target's configuration history."""
    require_permission(user, OPERATE_SESSIONS, "set a target's baseline")
    with transaction.atomic():
        session.refresh_from_db(fields=["status", "total_requests", "target"])
        if session.status not in BASELINE_STATUSES:
            raise SessionStateError(
                f"Session {session.pk} is {session.status}: only a completed or stopped session "
                "can be a baseline (its figures are final then; a failed run's are not "
                "representative)."
            )
        if not session.total_requests:
            raise SessionStateError(
                f"Session {session.pk} sent no request: there is nothing to compare with."
            )
        target = Target.objects.select_for_update().get(pk=session.target_id)
        return _change_baseline(target, session, user, via)


def clear_baseline(target: Target, user=None, via: str = "api") -> Target:
    """Leave ``target`` without a baseline: its runs are no longer judged for regressions."""
    require_permission(user, OPERATE_SESSIONS, "clear a target's baseline")
    with transaction.atomic():
        target = Target.objects.select_for_update().get(pk=target.pk)
        return _change_baseline(target, None, user, via)


def _change_baseline(target: Target, session: LoadTestSession | None, user, via: str) -> Target:
    before = config_history.snapshot(target)
    Target.objects.filter(pk=target.pk).update(baseline_session=session)
    target.refresh_from_db()
    config_history.record_changes(target, before, user=user, via=via)
    return target
