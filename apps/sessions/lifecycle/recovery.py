"""A session whose Redis state is gone while it runs (Redis restarted without persistence,
failed over to a replica that had not caught up, or was flushed) goes on: the monitor rebuilds
that state from the database and queues its shards again.

The database keeps what a session needs to carry on: its plan, its user count and live
endpoint weights, when its load started, and its counters up to the monitor's last pass. The
rebuild publishes them again under a new *generation floor* (every shard is queued above any
generation it had before, so one that was cut off and comes back finds itself superseded),
and seeds the Redis counters with the saved totals, so that the shards' increments add to
them and the monitor's copy of absolute values neither loses nor double-counts anything.

What is lost is what never reached the database: the requests counted since the monitor's
last pass, until the old shards stopped (they stop within a poll of finding their session
gone, or HEARTBEAT_TTL_S after losing Redis). That count is estimated from the recent rate and
recorded as a ``redis_state_rebuilt`` session event.

Where carrying on would make no sense the session ends instead: one that was stopping ends
as its stop asked, one whose duration ran out meanwhile completes, and only one whose target
is no longer allowed (ALLOWED_TARGET_HOSTS changed since its start) ends ``redis_lost``:
rebuilding would send load the configuration now forbids.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from apps.sessions.choices import EndReason, EventKind, SessionStatus
from apps.sessions.lifecycle.live import live_endpoint_weights
from apps.sessions.lifecycle.transitions import finish_session
from apps.sessions.models import EndpointStats, FlowStats, LoadTestSession, TimeSeriesPoint
from apps.sessions.results.records import record_event
from apps.sessions.validation import check_endpoint_url
from apps.workers.control import forget_session
from apps.workers.dispatch import rebuild_session
from apps.workers.plan import Plan
from apps.workers.stats import (
    EndpointTotals,
    FlowTotals,
    flow_stats_hash_fields,
    stats_hash_fields,
)

logger = logging.getLogger(__name__)

# The rate behind the estimate of lost requests: the last this many seconds the database has.
RATE_WINDOW_S = 10.0


def generation_floor(started_at: datetime, now: datetime) -> int:
    """Milliseconds since the session started: above every generation its shards had before.

    Generations start at 1 and grow by one each time a shard is queued again, which needs
    the previous generation to have finished (a flush, or a heartbeat lifetime): far fewer
    than a thousand times a second. So a floor taken later is always above the generations
    of an earlier one, with no counter to keep anywhere (the counter would be in Redis,
    which is what was lost).
    """
    return max(1, int((now - started_at).total_seconds() * 1000))


def unsupervised_limit_s() -> float:
    """The longest the lost counts can cover, after the monitor's last pass: a pass copies
    the counters every MONITOR_INTERVAL_S; a shard that loses Redis sends on for
    HEARTBEAT_TTL_S before it stops by itself, and then waits up to STOP_GRACE_S for the
    requests in flight."""
    return settings.MONITOR_INTERVAL_S + settings.HEARTBEAT_TTL_S + settings.STOP_GRACE_S


def estimate_lost_requests(rate_rps: float, since_saved_s: float, limit_s: float) -> int:
    """Requests the statistics may lack: the recent rate over the time since the counters
    last reached the database, but no longer than shards can send without Redis."""
    window_s = min(max(since_saved_s, 0.0), max(limit_s, 0.0))
    return max(0, round(max(rate_rps, 0.0) * window_s))


def recover_lost_state(session: LoadTestSession, client) -> bool:
    """The monitor found no Redis state for ``session`` (active, with a plan) while Redis
    answers. Returns True while the session needs more ticks."""
    now = timezone.now()
    lack = _lack(session, now)
    if session.status == SessionStatus.STOPPING:
        # The stop was asked for and the shards have stopped (no control state means stop):
        # the session ends as asked.
        reason = EndReason(session.end_reason or EndReason.STOPPED_BY_USER)
        return _end(session, client, reason, f"Redis lost this session's state while it "
                    f"stopped; its shards stopped. {lack}")  # fmt: skip
    deadline = session.deadline
    if deadline is not None and now >= deadline:
        return _end(session, client, EndReason.COMPLETED, f"The duration ended while Redis had "
                    f"lost this session's state. {lack}")  # fmt: skip
    plan = session.read_plan()
    refused = _refused_endpoints(plan)
    if refused:
        return _end(session, client, EndReason.REDIS_LOST,
                    "Redis lost this session's state (restarted without persistence, failed "
                    "over or flushed) and it was not rebuilt: its target is no longer on "
                    f"ALLOWED_TARGET_HOSTS ({refused}). Its shards stopped. {lack}")  # fmt: skip

    floor = generation_floor(session.start_time or now, now)
    queued = rebuild_session(
        session.pk,
        plan,
        session.concurrent_users,
        session.target_rps,
        generation_floor=floor,
        load_started_at=session.load_started_at.timestamp() if session.load_started_at else None,
        weights=live_endpoint_weights(session),
        stats={
            **stats_hash_fields(saved_totals(session, plan)),
            **flow_stats_hash_fields(saved_flow_totals(session, plan)),
        },
    )
    message = (
        "Redis lost this session's state (restarted without persistence, failed over or "
        f"flushed): rebuilt from the database, {len(queued)} shard(s) queued again as "
        f"generation {floor + 1} or later. {lack}"
    )
    logger.warning("Session %s: %s", session.pk, message)
    record_event(session.pk, EventKind.REDIS_STATE_REBUILT, message)
    return True


def _end(session: LoadTestSession, client, reason: EndReason, detail: str) -> bool:
    finish_session(session.pk, reason, detail)
    forget_session(client, session.pk)
    logger.warning("Session %s: %s", session.pk, detail)
    return False


def _refused_endpoints(plan: Plan) -> str:
    """The plan's URLs the allow-list refuses now (the environment may have changed since
    the start), as one sentence; "" when every one is allowed."""
    refused = []
    for endpoint in plan.endpoints:
        try:
            check_endpoint_url(endpoint.url)
        except ValidationError as exc:
            refused.append(f"{endpoint.name}: {' '.join(exc.messages)}")
    return "; ".join(refused)


def _lack(session: LoadTestSession, now: datetime) -> str:
    """What the statistics may lack, as a sentence for the session's event or end detail."""
    started = session.load_started_at or session.start_time or now
    saved_at = session.stats_updated_at or started
    rate_rps = _recent_rate_rps(session, started, saved_at)
    since_s = (now - saved_at).total_seconds()
    limit_s = unsupervised_limit_s()
    lost = estimate_lost_requests(rate_rps, since_s, limit_s)
    return (
        f"The statistics may lack about {lost} requests: {rate_rps:.1f}/s (the recent rate) "
        f"over {min(max(since_s, 0.0), limit_s):.1f} s ({since_s:.1f} s since the counts last "
        f"reached the database, at most {limit_s:g} s while shards send without Redis)."
    )


def _recent_rate_rps(session: LoadTestSession, started: datetime, saved_at: datetime) -> float:
    """Requests per second over the last RATE_WINDOW_S the database has.

    A point holds the second that begins at its timestamp, so the window starts on a whole
    second, or when the load started if that is later (nothing was sent before)."""
    window_start = (saved_at - timedelta(seconds=RATE_WINDOW_S)).replace(microsecond=0)
    span_s = (saved_at - max(window_start, started)).total_seconds()
    if span_s <= 0:
        return 0.0
    requests = TimeSeriesPoint.objects.filter(
        session=session, timestamp__gte=window_start, timestamp__lte=saved_at
    ).aggregate(requests=Sum("requests"))["requests"]
    return (requests or 0) / span_s


def saved_totals(session: LoadTestSession, plan: Plan) -> dict[int, EndpointTotals]:
    """The session's counters as the database has them, by plan position: the inverse of the
    monitor's copy (``EndpointStats`` keeps the latency sum as a mean, read back exactly)."""
    positions = {endpoint.name: index for index, endpoint in enumerate(plan.endpoints)}
    totals = {}
    for row in EndpointStats.objects.filter(session=session):
        if row.name in positions:
            totals[positions[row.name]] = totals_of(row)
    return totals


def totals_of(row: EndpointStats) -> EndpointTotals:
    histogram = {int(bucket): int(count) for bucket, count in (row.histogram or {}).items()}
    samples = sum(histogram.values())
    return EndpointTotals(
        requests=row.requests,
        failures_by_class=dict(row.failures_by_class or {}),
        not_sent=dict(row.not_sent or {}),
        cut_by_stop=row.cut_by_stop,
        unreached=row.unreached,
        check_failures=dict(row.check_failures or {}),
        latency_sum_us=round(row.mean_ms * 1000 * samples) if row.mean_ms is not None else 0,
        min_us=round(row.min_ms * 1000) if row.min_ms is not None else None,
        max_us=round(row.max_ms * 1000) if row.max_ms is not None else None,
        histogram=histogram,
    )


def saved_flow_totals(session: LoadTestSession, plan: Plan) -> dict[int, FlowTotals]:
    """The session's flow counters as the database has them, by position in the plan's
    ``flows`` (by name: a flow the plan no longer names is left out)."""
    positions = {flow.name: index for index, flow in enumerate(plan.flows)}
    totals = {}
    for row in FlowStats.objects.filter(session=session):
        if row.name in positions:
            totals[positions[row.name]] = flow_totals_of(row)
    return totals


def flow_totals_of(row: FlowStats) -> FlowTotals:
    """The inverse of the monitor's copy of one flow (the duration sum is kept as a mean over
    the iterations, read back exactly)."""
    return FlowTotals(
        iterations=row.iterations,
        failed=row.failed_iterations,
        duration_sum_us=round(row.mean_ms * 1000 * row.iterations)
        if row.mean_ms is not None
        else 0,
        min_us=round(row.min_ms * 1000) if row.min_ms is not None else None,
        max_us=round(row.max_ms * 1000) if row.max_ms is not None else None,
        histogram={int(bucket): int(count) for bucket, count in (row.histogram or {}).items()},
    )
