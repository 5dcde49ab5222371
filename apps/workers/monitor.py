"""The per-session monitor: Redis aggregates into the database, and the session's end.

One tick runs about once a second on the `control` queue. It copies the cumulative counters
(absolute values, so a repeated or concurrent tick cannot double-count), adds the drained
per-second points, notices shards whose heartbeat is gone, ends the session when its duration
is over, and records the terminal status once every shard has finished. Database writes per
tick depend on the number of endpoints, never on the number of shards or requests.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.sessions import services
from apps.sessions.choices import ACTIVE_STATUSES, EndReason, SessionStatus
from apps.sessions.models import EndpointStats, LoadTestSession, TimeSeriesPoint

from .control import (
    CLAIM_SCRIPT,
    DRAIN_HASH_SCRIPT,
    SessionKeys,
    ShardState,
    decode,
    forget_session,
    get_redis,
)
from .dispatch import monitor_claim_ms
from .stats import parse_series_hash, parse_stats_hash

logger = logging.getLogger(__name__)

# A shard marked running whose heartbeat has expired is lost (its worker died). Atomic, so a
# shard that finishes between the check and the mark keeps its "done".
MARK_LOST_SCRIPT = """
local states = {}
for index = 0, tonumber(ARGV[1]) - 1 do
  local state = redis.call('HGET', KEYS[1], tostring(index))
  if state == 'running' and redis.call('EXISTS', ARGV[2] .. index) == 0 then
    redis.call('HSET', KEYS[1], tostring(index), 'lost')
    state = 'lost'
  end
  states[index + 1] = state or ''
end
return states
"""


def monitor_tick(session_id: int, chain_id: str) -> bool:
    """One pass over the session. Returns True while the session needs another tick."""
    client = get_redis()
    keys = SessionKeys(session_id)
    if not client.eval(CLAIM_SCRIPT, 1, keys.monitor, chain_id, monitor_claim_ms()):
        return False  # another chain owns this session
    session = LoadTestSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in ACTIVE_STATUSES or not session.plan:
        client.delete(keys.monitor)
        return False

    shard_count = len(session.plan["shards"])
    # A shard with no state at all means Redis lost the session (restarted without
    # persistence, say): nothing runs it any more, so it counts as lost.
    states = [
        decode(state) or ShardState.LOST
        for state in client.eval(MARK_LOST_SCRIPT, 1, keys.shards, shard_count, keys.heartbeat(""))
    ]
    sync_statistics(session, client)

    if all(state in ShardState.FINISHED for state in states):
        reason, detail = _end_reason(session, states)
        services.finish_session(session_id, reason, detail)
        sync_statistics(session, client)  # nothing can arrive after "finished": be complete
        forget_session(client, session_id, shard_count)
        return False

    now = timezone.now()
    if session.status == SessionStatus.STARTING:
        if any(state and state != ShardState.QUEUED for state in states):
            services.mark_running(session_id)
        elif (now - session.start_time).total_seconds() > settings.SHARD_START_TIMEOUT_S:
            _give_up_unstarted(session, client, shard_count)
            return False
    deadline = session.deadline
    if deadline is not None and now >= deadline and session.status != SessionStatus.STOPPING:
        services.stop_session(session, reason=EndReason.COMPLETED)
    return True


def _end_reason(session: LoadTestSession, states: list[str | None]) -> tuple[EndReason, str]:
    lost = [index for index, state in enumerate(states) if state == ShardState.LOST]
    interrupted = [index for index, state in enumerate(states) if state == ShardState.INTERRUPTED]
    notes = []
    if lost:
        notes.append(f"shard(s) {lost} lost their worker (heartbeat expired)")
    if interrupted:
        notes.append(f"shard(s) {interrupted} stopped because their worker shut down")
    detail = "; ".join(notes).capitalize() + ("." if notes else "")
    if session.end_reason:
        return EndReason(session.end_reason), detail
    deadline = session.deadline
    if not notes and deadline is not None and timezone.now() >= deadline:
        return EndReason.COMPLETED, detail
    if notes:
        return EndReason.WORKERS_LOST, detail
    return EndReason.FAILURE, "Every shard stopped without a stop request (Redis state lost?)."


def _give_up_unstarted(session: LoadTestSession, client, shard_count: int) -> None:
    from .control import request_stop

    request_stop(client, session.pk)  # a shard picked up later exits without sending
    services.finish_session(
        session.pk,
        EndReason.WORKERS_LOST,
        f"No load worker started the session's shards within {settings.SHARD_START_TIMEOUT_S:g} s."
        " Is a Celery worker consuming the 'load' queue running?",
    )
    forget_session(client, session.pk, shard_count)


def sync_statistics(session: LoadTestSession, client) -> None:
    """Copy the session's cumulative counters and new per-second points into the database."""
    keys = SessionKeys(session.pk)
    totals = parse_stats_hash(client.hgetall(keys.stats))
    drained = client.eval(DRAIN_HASH_SCRIPT, 1, keys.series)
    points = parse_series_hash(dict(zip(drained[::2], drained[1::2], strict=True)))
    if not totals and not points:
        return
    plan_endpoints = session.plan["endpoints"]
    with transaction.atomic():
        existing = {row.name: row for row in session.endpoint_stats.all()}
        for index, entry in totals.items():
            endpoint = plan_endpoints[index]
            row = existing.get(endpoint["name"])
            if row is not None and row.requests == entry.requests:
                continue  # nothing new for this endpoint (every outcome is a request)
            percentiles = entry.percentiles_ms()
            EndpointStats.objects.update_or_create(
                session=session,
                name=endpoint["name"],
                defaults={
                    "endpoint_id": endpoint.get("id"),
                    "method": endpoint["method"],
                    "url": endpoint["url"],
                    "requests": entry.requests,
                    "failures": entry.failures,
                    "failures_by_class": entry.failures_by_class,
                    "min_ms": entry.min_us / 1000 if entry.min_us is not None else None,
                    "max_ms": entry.max_us / 1000 if entry.max_us is not None else None,
                    "mean_ms": entry.mean_ms(),
                    "p50_ms": percentiles[0.5],
                    "p90_ms": percentiles[0.9],
                    "p95_ms": percentiles[0.95],
                    "p99_ms": percentiles[0.99],
                    "p999_ms": percentiles[0.999],
                    "histogram": {str(bucket): count for bucket, count in entry.histogram.items()},
                },
            )
        if totals:
            LoadTestSession.objects.filter(pk=session.pk).update(
                total_requests=sum(entry.requests for entry in totals.values()),
                total_failures=sum(entry.failures for entry in totals.values()),
                stats_updated_at=timezone.now(),
            )
        for second, (requests, failures, latency_sum_us) in sorted(points.items()):
            _add_point(session, second, requests, failures, latency_sum_us / 1000)


def _add_point(session, second: int, requests: int, failures: int, latency_sum_ms: float) -> None:
    """Add to the second's point: its counts may arrive over several flushes and ticks."""
    timestamp = datetime.fromtimestamp(second, tz=UTC)
    increments = {
        "requests": F("requests") + requests,
        "failures": F("failures") + failures,
        "latency_sum_ms": F("latency_sum_ms") + latency_sum_ms,
    }
    points = TimeSeriesPoint.objects.filter(session=session, timestamp=timestamp)
    if points.update(**increments):
        return
    try:
        with transaction.atomic():
            TimeSeriesPoint.objects.create(
                session=session,
                timestamp=timestamp,
                requests=requests,
                failures=failures,
                latency_sum_ms=latency_sum_ms,
            )
    except IntegrityError:  # another monitor created it between our update and insert
        points.update(**increments)


def watchdog() -> int:
    """Give every active session a monitor if its chain has died (worker restart, lost task).

    Returns how many chains were started. Driven by Celery beat every WATCHDOG_INTERVAL_S.
    """
    from .dispatch import start_monitor

    started = 0
    # A session younger than a claim's lifetime still has the monitor its start queued (or
    # is being dispatched right now): only older ones can have lost theirs.
    settled = timezone.now() - timedelta(milliseconds=monitor_claim_ms())
    active = LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES, start_time__lt=settled)
    for session_id in active.values_list("pk", flat=True):
        if start_monitor(session_id):
            logger.warning("Session %s had no monitor; started a new one.", session_id)
            started += 1
    return started
