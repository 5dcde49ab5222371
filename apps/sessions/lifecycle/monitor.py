"""The per-session monitor, where a session's lifecycle is decided: Redis aggregates into the
database, and the session's health.

Celery beat queues one tick per active session every MONITOR_INTERVAL_S on the `control`
queue (one tick at a time per session, by a Redis lock). A tick copies the cumulative counters
(absolute values, so a repeated or concurrent tick cannot double-count), adds the drained
per-second points and engine events, and then looks after the session:
- a shard whose heartbeat expired is marked lost and, like a shard whose worker shut down,
  re-dispatched to any worker with a free slot (next generation: the old one, should it come
  back, stops itself);
- the load's start (set in Redis by the first shard to run) is recorded in the database,
  and the duration counts from it;
- shards waiting in the queue for want of a free worker process are reported in the
  session's ``status_detail`` and its events;
- the session stops itself at the end of its duration, or when its errors per minute pass
  ``max_errors_per_minute``, or when an ``abort`` threshold fails (``verdicts``);
- its thresholds are judged on every tick and, on the complete figures, at the end;
- its load is reduced while most requests find the target unavailable, and restored after;
- a session whose Redis state is gone (Redis restarted without persistence, failed over,
  flushed) is rebuilt from the database and its shards queued again (see ``recovery``);
- it ends ``failed`` if no shard has been alive for SHARD_START_TIMEOUT_S (saying which
  capacity is missing), and records its terminal status once every shard has finished: the
  tick a stop queues waits for the shards, so a stopped session ends within about a second.
Database writes per tick depend on the number of endpoints (and flows), never on shards or
requests.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from apps.sessions.api.serializers.results import ErrorSampleSerializer
from apps.sessions.api.snapshots import stats_snapshot
from apps.sessions.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    EndReason,
    EventKind,
    SessionStatus,
    WebhookEvent,
)
from apps.sessions.integrations import newrelic, webhooks
from apps.sessions.lifecycle.judging import check_final, check_live
from apps.sessions.lifecycle.recovery import recover_lost_state
from apps.sessions.lifecycle.stop import stop_orphan_load, stop_session
from apps.sessions.lifecycle.transitions import (
    finish_session,
    mark_running,
    monitor_ticks_s,
    note_waiting,
    queue_monitor_tick,
)
from apps.sessions.models import LoadTestSession
from apps.sessions.results.live import (
    latency_window,
    live_figures,
    tick_figures,
    window_totals,
)
from apps.sessions.results.records import record_event
from apps.sessions.results.sync import (
    fill_tick_gap,
    record_tick_point,
    store_events,
    sync_statistics,
)
from apps.workers.control import (
    KEY_PREFIX,
    ORPHAN_TTL_S,
    RELEASE_LOCK_SCRIPT,
    SessionKeys,
    forget_session,
    get_redis,
    mark_lost,
    mark_silent_shards_lost,
    read_assignments,
    read_heartbeats,
    read_load_factor,
    read_load_started_at,
    read_stop_requested_at,
    request_stop,
    set_load_factor,
)
from apps.workers.dispatch import redispatch_shards
from apps.workers.inventory import LOAD_QUEUE, counted, load_capacity
from apps.workers.signals import PRESENCE_INTERVAL_S
from apps.workers.vocabulary import (
    SHARD_STATES_COMPLETE,
    SHARD_STATES_REPLACEABLE,
    ShardState,
)

logger = logging.getLogger(__name__)


# A queued shard counts as waiting for a worker only after this long (see _waited_long).
WAITING_REPORTED_AFTER_S = 2 * PRESENCE_INTERVAL_S


class LiveErrorSerializer(ErrorSampleSerializer):
    class Meta(ErrorSampleSerializer.Meta):
        fields = ["at", "endpoint", "failure_class", "status", "message"]


# How often a tick looks whether a stopping session's shards have finished, and how long it
# allows a shard for its final flush after the grace (see _await_stopping_shards).
STOP_WAIT_POLL_S = 0.02
STOP_FINAL_FLUSH_ALLOWANCE_S = 0.5
MIN_REQUESTS_TO_REDUCE = 20  # a handful of failures is not yet a trend
MIN_REQUESTS_TO_RESTORE = 5
LIVE_ERRORS = 20  # error samples in each live snapshot
# A finished session's last snapshot outlives its other keys (forgotten at once) this long,
# so that a stream opened later still sends its end.
SNAPSHOT_TTL_S = 3600


def monitor_session(session_id: int) -> bool:
    """One tick, unless another tick of the same session is still running (it then skips).

    Returns True while the session needs more ticks.
    """
    client = get_redis()
    lock = SessionKeys(session_id).monitor
    token = uuid.uuid4().hex
    lock_ms = int(monitor_ticks_s(3) * 1000)
    if not client.set(lock, token, nx=True, px=lock_ms):
        return True
    try:
        return monitor_tick(session_id)
    finally:
        client.eval(RELEASE_LOCK_SCRIPT, 1, lock, token)


def monitor_tick(session_id: int) -> bool:
    """One pass over the session. Returns True while the session needs another tick."""
    client = get_redis()
    keys = SessionKeys(session_id)
    session = LoadTestSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in ACTIVE_STATUSES or not session.plan:
        return False
    if not client.exists(keys.plan):
        # Redis restarted without persistence, failed over or was flushed: the shards have
        # stopped for want of a control state, and what they flushed since the last tick is
        # gone. The database has the rest: the session is rebuilt from it and goes on.
        return recover_lost_state(session, client)

    load_started_at = read_load_started_at(client, session_id)
    if load_started_at is not None and session.load_started_at is None:
        mark_running(session_id, datetime.fromtimestamp(load_started_at, tz=UTC))
        session.refresh_from_db(fields=["status", "load_started_at"])

    previous_tick = client.get(keys.ticked)
    states = mark_silent_shards_lost(client, session_id)
    if session.status == SessionStatus.STOPPING:
        states = _await_stopping_shards(client, session_id, states)
    growth = sync_statistics(session, client)
    store_events(session, client)
    now = timezone.now()
    now_s = now.timestamp()
    heartbeats = read_heartbeats(client, session_id)
    since_s = _tick_began(previous_tick, load_started_at, now_s)
    window = latency_window(client, session_id, growth, since_s, now_s)
    figures = tick_figures(window, growth, heartbeats)
    if load_started_at is not None:
        # The seconds of load since the previous tick that have no latency or users yet:
        # none ended a tick, or the previous tick came before the first answers.
        after_s = int(float(previous_tick)) if previous_tick else 0
        fill_tick_gap(session, max(after_s, int(load_started_at)), int(now_s) - 1, figures)
    record_tick_point(session, int(now_s), figures)
    elapsed_s = now_s - float(previous_tick) if previous_tick else None
    live = live_figures(session, growth, window, figures, now, elapsed_s)
    publish_snapshot(session_id, client, live, heartbeats)

    if any(state == ShardState.RUNNING for state in states.values()):
        client.set(keys.alive, time.time())
    stopping = session.status == SessionStatus.STOPPING
    states.update(_lost_messages(client, session_id, states))
    assignments = read_assignments(client, session_id)
    replaceable = [
        index
        for index, state in states.items()
        if state in SHARD_STATES_REPLACEABLE and assignments.get(index) and assignments[index].users
    ]
    if replaceable and not stopping:
        _redispatch(session, replaceable)
        return True

    if all(state in SHARD_STATES_COMPLETE for state in states.values()) or (
        stopping and _finished(states)
    ):
        reason, detail = _end_reason(session, states)
        if any(state in WORKER_GONE for state in states.values()):
            record_event(session_id, EventKind.WORKERS_LOST, detail)  # before "ended"
        finished = finish_session(session_id, reason, detail, notify=False)
        sync_statistics(session, client)  # nothing can arrive after "finished": be complete
        # The last flush's seconds, after this tick's: the run's last users and percentiles.
        fill_tick_gap(session, int(now_s) + 1, int(time.time()) + 1, figures, create=False)
        store_events(session, client)
        check_final(session_id)  # on the complete figures; marks them final
        if finished:
            webhooks.notify_final(session_id)  # with the complete figures and verdicts
            newrelic.queue_marker(session_id, newrelic.END)
        publish_snapshot(session_id, client, live, {})
        forget_session(client, session_id)
        return False

    queued = sorted(index for index, state in states.items() if state == ShardState.QUEUED)
    waiting = _waited_long(client, keys, queued)
    capacity = load_capacity(client) if queued else None
    detail = _waiting_detail(waiting, capacity)
    if detail != session.status_detail and not stopping:
        note_waiting(session_id, detail)
    if _seconds_without_shards(client, keys) > settings.SHARD_START_TIMEOUT_S:
        _give_up(session, client, queued, capacity)
        return False
    if not stopping:
        _enforce_limits(session, client, now)
        session.refresh_from_db(fields=["status", "total_requests", "end_time"])
        check_live(session)
    return True


def _tick_began(previous_tick: bytes | None, load_started_at: float | None, now_s: float) -> float:
    """Where this tick's answers begin: the previous tick, or the load's start for the first
    one (or one interval back, when neither is known)."""
    if previous_tick:
        return float(previous_tick)
    if load_started_at is not None:
        return min(float(load_started_at), now_s)
    return now_s - settings.MONITOR_INTERVAL_S


def publish_snapshot(session_id: int, client, live: dict, heartbeats: dict[int, dict]) -> None:
    """Build the session's live snapshot once per tick and hand it to every open stream:
    stored (a new stream sends it at once) and published (the open ones send it as it
    comes). The streams then read nothing from the database, however many they are."""
    session = LoadTestSession.objects.get(pk=session_id)
    keys = SessionKeys(session_id)
    data = {
        **stats_snapshot(session),
        **live,
        "remaining_s": _remaining_s(session),
        "load_started_at": session.load_started_at,
        "status_detail": session.status_detail,
        "shards": [
            {
                "shard": index,
                "generation": beat.get("generation"),
                "hostname": beat.get("hostname", ""),
                "users": beat.get("users", 0),
                "rate": beat.get("rate", 0.0),
                "last_heartbeat": beat.get("at"),
            }
            for index, beat in sorted(heartbeats.items())
        ],
        "errors": LiveErrorSerializer(
            session.error_samples.order_by("-at", "-pk")[:LIVE_ERRORS], many=True
        ).data,
    }
    event = "end" if session.status in TERMINAL_STATUSES else "stats"
    event_id = client.incr(keys.snapshot_seq)
    payload = json.dumps({"id": event_id, "event": event, "data": data}, cls=DjangoJSONEncoder)
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.snapshot, payload, ex=SNAPSHOT_TTL_S)
        pipe.expire(keys.snapshot_seq, SNAPSHOT_TTL_S)
        pipe.publish(keys.snapshot_channel, payload)
        pipe.execute()


def _remaining_s(session: LoadTestSession) -> float | None:
    deadline = session.deadline
    if deadline is None or session.status in TERMINAL_STATUSES:
        return None
    return round(max((deadline - timezone.now()).total_seconds(), 0.0), 1)


def _finished(states: dict[int, ShardState]) -> bool:
    """Whether every shard of a stopping session is done with (a stopping session replaces
    no shard, so one lost or interrupted counts as done)."""
    return all(
        state in SHARD_STATES_COMPLETE or state in SHARD_STATES_REPLACEABLE
        for state in states.values()
    )


def _await_stopping_shards(
    client, session_id: int, states: dict[int, ShardState]
) -> dict[int, ShardState]:
    """A stopping session ends as soon as its shards have, not a beat later: the stop queues
    a tick at once, and a tick soon after the stop waits here for the shards to report
    themselves finished (a few Redis reads), until the longest a shard takes to stop (a control
    poll, STOP_GRACE_S, its final flush) has passed since the stop was asked. Later ticks do
    not wait: a shard that has not finished by then is left to its heartbeat's expiry."""
    requested_at = read_stop_requested_at(client, session_id)
    if requested_at is None:
        return states
    until = (
        requested_at
        + settings.CONTROL_POLL_INTERVAL_S
        + settings.STOP_GRACE_S
        + STOP_FINAL_FLUSH_ALLOWANCE_S
    )
    while not _finished(states) and time.time() < until:
        time.sleep(STOP_WAIT_POLL_S)
        states = mark_silent_shards_lost(client, session_id)
    return states


def _lost_messages(client, session_id: int, states: dict[int, ShardState]) -> dict[int, ShardState]:
    """Shards queued long ago whose task message is no longer in the queue: lost.

    A worker that dies between taking a shard's message and starting it takes the message
    with it (no broker redelivery, by design). A shard may also wait in the queue for a free
    process; only an empty queue tells the two apart.
    """
    queued = [index for index, state in states.items() if state == ShardState.QUEUED]
    if not queued:
        return {}
    queued_at = client.hmget(SessionKeys(session_id).queued_at, [str(i) for i in queued])
    limit = time.time() - settings.HEARTBEAT_TTL_S
    stale = [i for i, at in zip(queued, queued_at, strict=True) if at and float(at) < limit]
    if not stale or client.llen(LOAD_QUEUE):
        return {}
    mark_lost(client, session_id, stale)
    return {index: ShardState.LOST for index in stale}


def _redispatch(session: LoadTestSession, indices: list[int]) -> None:
    for index, generation in redispatch_shards(session.pk, indices):
        message = (
            f"Shard {index} re-dispatched as generation {generation}: its worker was lost "
            "or shut down."
        )
        logger.warning("Session %s: %s", session.pk, message)
        record_event(session.pk, EventKind.SHARD_REDISPATCHED, message, shard=index)
        webhooks.notify(session.pk, WebhookEvent.WORKERS_LOST, message)


# Shard states that say the shard's worker went away (its heartbeat expired, or it shut down).
WORKER_GONE = (ShardState.LOST, ShardState.INTERRUPTED)


def _end_reason(session: LoadTestSession, states: dict[int, ShardState]) -> tuple[EndReason, str]:
    lost = sorted(index for index, state in states.items() if state == ShardState.LOST)
    interrupted = sorted(
        index for index, state in states.items() if state == ShardState.INTERRUPTED
    )
    notes = []
    if lost:
        notes.append(f"shard(s) {lost} lost their worker (heartbeat expired)")
    if interrupted:
        notes.append(f"shard(s) {interrupted} stopped because their worker shut down")
    detail = "; ".join(notes).capitalize() + ("." if notes else "")
    if session.end_reason:
        return EndReason(session.end_reason), detail
    deadline = session.deadline
    if deadline is not None and timezone.now() >= deadline:
        return EndReason.COMPLETED, detail
    if notes:
        return EndReason.WORKERS_LOST, detail
    return EndReason.FAILURE, "Every shard stopped without a stop request."


def _seconds_without_shards(client, keys: SessionKeys) -> float:
    """How long the monitor has watched the session without a live shard.

    Time the monitor itself was away (the control worker or beat down, the whole service
    stopped and started again) does not count: nothing could have started a shard then, and
    the workers need a moment to come back too.
    """
    now = time.time()
    with client.pipeline(transaction=True) as pipe:
        pipe.get(keys.alive)
        pipe.set(keys.ticked, now, ex=ORPHAN_TTL_S, get=True)
        alive, ticked = pipe.execute()
    alive_at = float(alive or now)
    away_s = now - float(ticked) if ticked is not None else 0.0
    if away_s > monitor_ticks_s(5):  # several ticks missed
        alive_at += away_s
        client.set(keys.alive, alive_at, ex=ORPHAN_TTL_S)
    return now - alive_at


def _waited_long(client, keys: SessionKeys, queued: list[int]) -> list[int]:
    """The queued shards that have waited longer than a worker takes to pick one up and
    refresh its presence.

    Workers report their busy processes every PRESENCE_INTERVAL_S, so a worker whose last
    shard has just ended may still count as full; a shard that waited less than that has not
    been refused a worker yet, and reporting it would be a false alarm.
    """
    if not queued:
        return []
    queued_at = client.hmget(keys.queued_at, [str(index) for index in queued])
    since = time.time() - WAITING_REPORTED_AFTER_S
    return [
        index
        for index, at in zip(queued, queued_at, strict=True)
        if at is not None and float(at) < since
    ]


def _waiting_detail(waiting: list[int], capacity) -> str:
    """Why queued shards wait, or "" when the workers have room for them (they are then
    about to start: the worker's presence is a few seconds old at most)."""
    if not waiting or capacity.free >= len(waiting):
        return ""
    return f"{counted(len(waiting), 'shard', 'shards')} queued; {capacity.shortage()}."


def _give_up(session: LoadTestSession, client, waiting: list[int], capacity) -> None:
    """No shard of the session has run for SHARD_START_TIMEOUT_S: end it, saying what was
    missing. A session whose load never started could not get a worker at all."""
    request_stop(client, session.pk)  # a shard picked up later exits without sending
    never_started = session.status == SessionStatus.STARTING
    timeout = f"SHARD_START_TIMEOUT_S ({settings.SHARD_START_TIMEOUT_S:g} s)"
    what = (
        f"No load worker started this session's shards within {timeout}"
        if never_started
        else f"No shard of this session has run for {timeout}"
    )
    why = f"{counted(len(waiting), 'shard', 'shards')} queued; " if waiting else ""
    why += capacity.shortage() if capacity is not None else "no shard is queued"
    if not never_started:
        record_event(session.pk, EventKind.WORKERS_LOST, f"{what}: {why}.")
    finish_session(
        session.pk,
        EndReason.NO_CAPACITY if never_started else EndReason.WORKERS_LOST,
        f"{what}: {why}. Add load workers (Celery workers consuming the {LOAD_QUEUE!r} "
        "queue), raise WORKER_CONCURRENCY, or run fewer sessions at once.",
    )
    forget_session(client, session.pk)


def _enforce_limits(session: LoadTestSession, client, now) -> None:
    """The end of the duration, the error ceiling, and load reduction."""
    deadline = session.deadline
    if deadline is not None and now >= deadline:
        stop_session(session, reason=EndReason.COMPLETED)
        return
    if session.status != SessionStatus.RUNNING:
        return
    if session.max_errors_per_minute:
        errors = window_totals(session, now, 60.0)["failures"]
        if errors > session.max_errors_per_minute:
            detail = (
                f"{errors} errors in the last minute, above max_errors_per_minute "
                f"({session.max_errors_per_minute})."
            )
            stop_session(session, reason=EndReason.ERROR_THRESHOLD, detail=detail)
            webhooks.notify(session.pk, WebhookEvent.ERROR_CEILING_REACHED, detail)
            return
    # Requests a breaker suppressed count as finding the target unavailable: that is why
    # they were not sent.
    window = window_totals(session, now, settings.LOAD_REDUCTION_WINDOW_S)
    requests = window["requests"] + window["suppressed"]
    unavailable = window["unavailable"] + window["suppressed"]
    factor = read_load_factor(client, session.pk)
    threshold = settings.LOAD_REDUCTION_ERROR_RATE
    if factor >= 1.0 and requests >= MIN_REQUESTS_TO_REDUCE and unavailable >= threshold * requests:
        set_load_factor(client, session.pk, settings.LOAD_REDUCTION_FACTOR)
        message = (
            f"{unavailable} of {requests} requests due in the last "
            f"{settings.LOAD_REDUCTION_WINDOW_S:g} s found the target unavailable: load "
            f"reduced to {settings.LOAD_REDUCTION_FACTOR:.0%}."
        )
        record_event(session.pk, EventKind.LOAD_REDUCED, message)
        webhooks.notify(session.pk, WebhookEvent.LOAD_REDUCED, message)
    elif (
        factor < 1.0
        and requests >= MIN_REQUESTS_TO_RESTORE
        and unavailable < threshold / 2 * requests
    ):
        set_load_factor(client, session.pk, 1.0)
        record_event(
            session.pk,
            EventKind.LOAD_RESTORED,
            f"{unavailable} of {requests} requests unavailable in the last "
            f"{settings.LOAD_REDUCTION_WINDOW_S:g} s: full load restored.",
        )


# When the last periodic tick reached the control worker (epoch seconds, as a string).
BEAT_TICK_KEY = f"{KEY_PREFIX}:beat:last_tick"
BEAT_TICK_TTL_S = 3600


def monitor_active_sessions() -> int:
    """Queue a tick for every active session, and stop any load whose session row is gone;
    Celery beat runs this every MONITOR_INTERVAL_S.

    Driving the monitors from beat (rather than chains of countdown tasks) keeps no message
    waiting unacknowledged in a worker, and a session can never lose its monitor: if a tick
    is lost, the next one comes a beat later.
    """
    # Beat's proof of life, read by its health check (``manage.py check_beat``): beat has
    # no port or remote control of its own, so what it does is the evidence that it runs.
    get_redis().set(BEAT_TICK_KEY, repr(time.time()), ex=BEAT_TICK_TTL_S)
    session_ids = list(
        LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True)
    )
    for session_id in session_ids:
        queue_monitor_tick(session_id)
    # Load whose session row is gone has no monitor of its own: stop it here.
    stop_orphan_load()
    return len(session_ids)
