"""One vocabulary of states: each enum has its table of allowed moves, and the code that moves a
state (the services' UPDATEs, the Redis scripts) follows that table; a shard returns one kind
of value, a ``StopReason``. Unit tests of the tables, then the same rules on the real database
and a real Redis."""

import asyncio
import itertools

import pytest

from apps.sessions.choices import (
    ACTIVE_STATUSES,
    SESSION_TRANSITIONS,
    TERMINAL_STATUSES,
    EndReason,
    SessionStatus,
)
from apps.sessions.lifecycle.monitor import monitor_tick
from apps.sessions.lifecycle.transitions import move_status
from apps.sessions.models import LoadTestSession, Target
from apps.workers import control
from apps.workers.control import SessionKeys, publish_session, reassign, request_stop
from apps.workers.shard import ShardRunner
from apps.workers.vocabulary import (
    CONTROL_TRANSITIONS,
    SHARD_STATE_AFTER_STOP,
    SHARD_STATES_COMPLETE,
    SHARD_STATES_REPLACEABLE,
    SHARD_TRANSITIONS,
    ControlState,
    ShardState,
    StopReason,
    shard_states_leading_to,
)

from ..support.engine import plan_for, trusting_settings

# --- the tables ------------------------------------------------------------------------------


def reachable(table, start) -> set:
    seen, frontier = set(), [start]
    while frontier:
        for after in table[frontier.pop()]:
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    return seen


def test_every_session_status_has_its_moves_and_is_reachable_from_pending():
    assert set(SESSION_TRANSITIONS) == set(SessionStatus)
    assert reachable(SESSION_TRANSITIONS, SessionStatus.PENDING) == set(SessionStatus)


def test_the_documented_lifecycle_is_allowed_and_ended_sessions_never_move():
    path = ["pending", "starting", "running", "stopping", "completed"]
    for before, after in itertools.pairwise(path):
        assert SessionStatus(after) in SESSION_TRANSITIONS[SessionStatus(before)]
    assert set(TERMINAL_STATUSES) == {"completed", "stopped", "failed"}
    assert all(not SESSION_TRANSITIONS[status] for status in TERMINAL_STATUSES)
    # Every reason a session ends for leads to a status an active session may reach.
    for reason in EndReason:
        assert all(reason.final_status in SESSION_TRANSITIONS[s] for s in ACTIVE_STATUSES)


def test_every_shard_state_has_its_moves_and_can_be_queued_again_once_finished():
    assert set(SHARD_TRANSITIONS) == {None, *ShardState}
    assert reachable(SHARD_TRANSITIONS, None) == set(ShardState)
    assert shard_states_leading_to(ShardState.QUEUED) == (
        SHARD_STATES_COMPLETE | SHARD_STATES_REPLACEABLE
    )
    # Queued and running shards are never queued again: that would double the load.
    assert ShardState.QUEUED not in SHARD_TRANSITIONS[ShardState.RUNNING]
    assert ShardState.QUEUED not in SHARD_TRANSITIONS[ShardState.QUEUED]


def test_the_control_state_only_ever_goes_from_running_to_stopping():
    assert reachable(CONTROL_TRANSITIONS, None) == set(ControlState)
    assert CONTROL_TRANSITIONS[ControlState.STOPPING] == frozenset()


def test_every_stop_reason_names_a_state_a_running_shard_may_take():
    assert set(SHARD_STATE_AFTER_STOP) == set(StopReason)
    for state in SHARD_STATE_AFTER_STOP.values():
        assert state is None or state in SHARD_TRANSITIONS[ShardState.RUNNING]


@pytest.mark.parametrize(
    "script",
    [control.FLUSH_SCRIPT, control.REASSIGN_SCRIPT, control.MARK_SILENT_SCRIPT],
)
def test_the_redis_scripts_spell_out_no_state(script):
    for state in [*ShardState, *ControlState]:
        assert f"'{state}'" not in script


# --- the code that moves states follows the tables -------------------------------------------


@pytest.fixture
def pending_session(db):
    target = Target.objects.create(name="states", base_url="http://127.0.0.1:9")
    return LoadTestSession.objects.create(session_name="states", target=target)


def test_move_status_moves_only_from_the_given_statuses(pending_session):
    assert move_status(pending_session.pk, (SessionStatus.PENDING,), SessionStatus.STARTING)
    assert not move_status(pending_session.pk, (SessionStatus.PENDING,), SessionStatus.STARTING)
    pending_session.refresh_from_db()
    assert pending_session.status == SessionStatus.STARTING


def test_move_status_refuses_a_move_the_table_does_not_have(pending_session):
    with pytest.raises(ValueError, match="cannot move from"):
        move_status(pending_session.pk, (SessionStatus.PENDING,), SessionStatus.RUNNING)
    LoadTestSession.objects.filter(pk=pending_session.pk).update(status=SessionStatus.COMPLETED)
    with pytest.raises(ValueError, match="cannot move from"):
        move_status(pending_session.pk, TERMINAL_STATUSES, SessionStatus.STARTING)
    pending_session.refresh_from_db()
    assert pending_session.status == SessionStatus.COMPLETED


def flush_state(redis_client, session_id: int, new_state: ShardState) -> None:
    keys = SessionKeys(session_id)
    args = control.flush_script_args(
        shard_index=0,
        generation=1,
        new_state=new_state,
        heartbeat=None,
        events=[],
        increments={},
        maxima={},
        minima={},
        series={},
        heartbeat_ttl_s=5,
        session_id=session_id,
    )
    script_keys = control.flush_script_keys(keys, 0)
    assert redis_client.eval(control.FLUSH_SCRIPT, len(script_keys), *script_keys, *args) == 1


@pytest.mark.parametrize("before", list(ShardState))
@pytest.mark.parametrize("after", list(ShardState))
def test_a_shards_flush_moves_its_state_only_along_the_table(
    redis_client, forget_redis_sessions, before, after
):
    session_id = 870001
    publish_session(redis_client, session_id, plan_for([]))
    reassign(redis_client, session_id, {0: (1, 0.0)})
    redis_client.hset(SessionKeys(session_id).shards, "0", before)
    flush_state(redis_client, session_id, after)
    expected = after if after in SHARD_TRANSITIONS[before] else before
    assert redis_client.hget(SessionKeys(session_id).shards, "0").decode() == expected


@pytest.mark.parametrize("state", list(ShardState))
def test_reassign_queues_a_shard_again_exactly_where_the_table_says(
    redis_client, forget_redis_sessions, state
):
    session_id = 870002
    reassign(redis_client, session_id, {0: (1, 0.0)})
    redis_client.hset(SessionKeys(session_id).shards, "0", state)
    dispatched = reassign(redis_client, session_id, {0: (2, 0.0)})
    assert (dispatched == [(0, 2)]) == (ShardState.QUEUED in SHARD_TRANSITIONS[state])


def test_the_monitor_marks_a_silent_running_shard_lost(
    pending_session, redis_client, forget_redis_sessions
):
    """Heartbeat gone: RUNNING -> LOST by the script, with the names passed in."""
    LoadTestSession.objects.filter(pk=pending_session.pk).update(
        status=SessionStatus.STOPPING, plan=plan_for([]).to_json()
    )
    publish_session(redis_client, pending_session.pk, plan_for([]))
    reassign(redis_client, pending_session.pk, {0: (1, 0.0), 1: (1, 0.0)})
    keys = SessionKeys(pending_session.pk)
    redis_client.hset(keys.shards, mapping={"0": ShardState.RUNNING, "1": ShardState.RUNNING})
    redis_client.set(keys.heartbeat(1), "{}")
    request_stop(redis_client, pending_session.pk)
    assert control.mark_silent_shards_lost(redis_client, pending_session.pk) == {
        0: ShardState.LOST,
        1: ShardState.RUNNING,
    }
    assert monitor_tick(pending_session.pk) is True  # shard 1 still runs: not finished yet


# --- a shard returns one kind of value ---------------------------------------------------------


def run_shard_once(redis_url: str, session_id: int) -> StopReason:
    runner = ShardRunner(
        session_id=session_id,
        shard_index=0,
        generation=1,
        redis_url=redis_url,
        hostname="in-process",
        settings=trusting_settings(flush_interval_s=0.1),
    )
    return asyncio.run(runner.run())


def test_a_shard_returns_a_stop_reason_however_it_ends(
    redis_client, redis_url, forget_redis_sessions
):
    keys = SessionKeys(870003)
    # Redis does not know the session.
    assert run_shard_once(redis_url, 870003) is StopReason.SESSION_GONE
    # Stopped before it got a worker: done, without sending.
    publish_session(redis_client, 870003, plan_for([("a", "http://127.0.0.1:9/")]))
    reassign(redis_client, 870003, {0: (1, 0.0)})
    request_stop(redis_client, 870003)
    assert run_shard_once(redis_url, 870003) is StopReason.STOPPED
    assert redis_client.hget(keys.shards, "0") == ShardState.DONE.encode()
    # Its users taken away before it started: retired.
    publish_session(redis_client, 870003, plan_for([("a", "http://127.0.0.1:9/")]))
    reassign(redis_client, 870003, {0: (1, 0.0)})
    reassign(redis_client, 870003, {0: (0, 0.0)})
    assert run_shard_once(redis_url, 870003) is StopReason.RETIRED
    assert redis_client.hget(keys.shards, "0") == ShardState.RETIRED.encode()
    # A newer generation holds the shard.
    redis_client.hset(keys.assign, "0", "2:1:0.0")
    assert run_shard_once(redis_url, 870003) is StopReason.SUPERSEDED
