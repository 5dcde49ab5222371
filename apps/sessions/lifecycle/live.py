"""Live changes of a running session: its users and its request mix, told to the engine
through Redis first, then stored with their configuration history."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from django.core.exceptions import ValidationError
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError

from apps.sessions.access import config_history
from apps.sessions.access.permissions import OPERATE_SESSIONS, require_permission
from apps.sessions.catalog.defaults import catalog_weights
from apps.sessions.choices import EventKind, SessionStatus
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.start import check_total_users, users_claim
from apps.sessions.models import LoadTestSession
from apps.sessions.results.records import actor_name, record_event
from apps.sessions.validation import (
    check_concurrent_users,
    effective_weights,
    endpoint_weights_problems,
)
from apps.workers import control, dispatch
from apps.workers.plan import Plan

logger = logging.getLogger(__name__)


def _check_running(session: LoadTestSession, what: str) -> None:
    if session.status not in (SessionStatus.STARTING, SessionStatus.RUNNING):
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; {what} can change while it runs."
        )


def _apply_live(
    session: LoadTestSession,
    changes: dict[str, object],
    tell_engine: Callable[[], object],
    *,
    what: str,
    kept: str,
    user,
    via: str,
) -> None:
    """A running session's change: the engine first (Redis; nothing stored if it cannot be
    told), then the row and the configuration history."""
    before = config_history.snapshot(session)
    try:
        tell_engine()
    except (RedisError, OSError, BrokerUnavailable) as exc:
        raise EngineUnavailable(
            f"Could not reach Redis to change the {what} ({exc}). Check that Redis is running "
            f"at REDIS_URL, then try again; the session keeps its current {kept}."
        ) from exc
    LoadTestSession.objects.filter(pk=session.pk).update(**changes)
    session.refresh_from_db()
    config_history.record_changes(session, before, user=user, via=via)


def change_users(
    session: LoadTestSession, concurrent_users: int, user=None, via: str = "api"
) -> LoadTestSession:
    """Change the load of a running session.

    The new count is spread over shards at once: running shards adjust within a poll, new
    shards are queued, shards no longer needed retire. Validated like a new configuration.
    """
    require_permission(user, OPERATE_SESSIONS, "change the load of running sessions")
    _check_running(session, "users")
    check_concurrent_users(concurrent_users)
    with users_claim():
        # The row as it is now: a resize that committed while this one waited changed it.
        session.refresh_from_db()
        _check_running(session, "users")
        check_total_users(concurrent_users - session.concurrent_users)
        previous = session.concurrent_users
        _apply_live(
            session,
            {"concurrent_users": concurrent_users},
            lambda: dispatch.resize_session(session.pk, concurrent_users, session.target_rps),
            what="load",
            kept="users",
            user=user,
            via=via,
        )
    record_event(
        session.pk,
        EventKind.USERS_CHANGED,
        f"Users {previous} -> {concurrent_users}.",
        actor=actor_name(user),
        via=via,
    )
    logger.info("Session %s: users %s -> %s by %s.", session.pk, previous, concurrent_users,
                user or "system")  # fmt: skip
    session.refresh_from_db()
    return session


def change_weights(
    session: LoadTestSession, endpoint_weights: Mapping[str, float], user=None, via: str = "api"
) -> LoadTestSession:
    """Change the request mix of a running session.

    ``endpoint_weights`` replaces the session's overrides, checked like a new configuration's
    against the target's endpoints now. Every shard picks the new weights up on its next
    control poll (``control.set_endpoint_weights``). The plan's endpoints stay those the
    session started with: an endpoint left out then (weight 0) has no prepared request on the
    shards, so giving it weight is refused with a pointer to a clone.
    """
    require_permission(user, OPERATE_SESSIONS, "change the request mix of running sessions")
    _check_running(session, "weights")
    default_weights = catalog_weights(session.target)
    problems = endpoint_weights_problems(endpoint_weights, default_weights)
    if problems:
        raise ValidationError({"endpoint_weights": problems})
    weights = effective_weights(default_weights, endpoint_weights)
    plan = session.read_plan()  # frozen by the start, with the status starting
    planned = set(_mix_names(plan))
    left_out = sorted(
        name for name, weight in endpoint_weights.items() if weight > 0 and name not in planned
    )
    if left_out:
        raise ValidationError(
            {
                "endpoint_weights": [
                    f"{', '.join(left_out)} had weight 0 when the session started, so its "
                    "shards prepared no request for it; clone the session with these weights "
                    "to send to it."
                ]
            }
        )
    plan_weights = _weights_by_plan_position(weights, plan)
    if not any(weight > 0 for weight in plan_weights):
        raise ValidationError(
            {
                "endpoint_weights": [
                    "At least one endpoint (or flow) of the running plan needs weight."
                ]
            }
        )
    _apply_live(
        session,
        {"endpoint_weights": endpoint_weights},
        lambda: control.set_endpoint_weights(control.get_redis(), session.pk, plan_weights),
        what="weights",
        kept="mix",
        user=user,
        via=via,
    )
    mix = ", ".join(
        f"{name} {weight:g}"
        for name, weight in zip(_pick_names(plan), plan_weights, strict=True)
        if name is not None
    )
    record_event(
        session.pk,
        EventKind.WEIGHTS_CHANGED,
        f"Endpoint weights now {mix}.",
        actor=actor_name(user),
        via=via,
    )
    logger.info("Session %s: endpoint weights %s by %s.", session.pk, mix, user or "system")
    return session


def _pick_names(plan: Plan) -> list[str | None]:
    """The names of ``Plan.pick_weights()``'s entries: each endpoint's (None for a flow's
    step, never picked on its own), then each flow's."""
    return [endpoint.name if endpoint.flow is None else None for endpoint in plan.endpoints] + [
        flow.name for flow in plan.flows
    ]


def _mix_names(plan: Plan) -> list[str]:
    """What a running plan can give weight to: its single endpoints and its flows."""
    return [name for name in _pick_names(plan) if name is not None]


def _weights_by_plan_position(weights: Mapping[str, float], plan: Plan) -> list[float]:
    """One weight per entry of ``Plan.pick_weights()``, as the shards read them: each
    endpoint of the plan (0 for a flow's steps), then each flow. An endpoint or flow deleted
    from the catalog since the start gets no more requests."""
    return [0.0 if name is None else weights.get(name, 0.0) for name in _pick_names(plan)]


def live_endpoint_weights(session: LoadTestSession) -> list[float] | None:
    """The endpoint weights a running session's shards use, by plan position, if they were
    changed while it ran (``change_weights``); None while the plan's own weights hold.

    What the monitor publishes again when Redis lost the session's state: the configuration
    history says whether the weights changed after the start, the row says what to.
    """
    changed_live = (
        config_history.history_of(session)
        .filter(field="endpoint_weights", changed_at__gte=session.start_time)
        .exists()
    )
    if not changed_live:
        return None
    weights = effective_weights(catalog_weights(session.target), session.endpoint_weights)
    plan_weights = _weights_by_plan_position(weights, session.read_plan())
    return plan_weights if any(weight > 0 for weight in plan_weights) else None
