"""The words the engine reports in: how a request failed, and what happened to the load.

Defined here, on the engine's side, because the engine produces them; the control plane
stores them (its model choices are built from these enums) and adds words of its own.
Values are what Redis and the database hold: never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """How a request failed. ``cancelled`` is what earlier releases called a request still
    in flight when its shard stopped; such a request is now counted apart ("cut by the
    stop", ``stats.CUT``), never as a failure, and the class stays for the runs stored then."""

    NETWORK = "network"  # refused, reset, DNS, TLS, an invalid answer
    TIMEOUT = "timeout"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    APPLICATION = "application"  # our own exception
    CANCELLED = "cancelled"


class EngineEventKind(StrEnum):
    """Events a shard records about its own load, for the session's operator."""

    BREAKER_OPENED = "breaker_opened"
    BREAKER_CLOSED = "breaker_closed"
    USERS_SHED = "users_shed"  # the resource guard took users away
    USERS_RESTORED = "users_restored"
    SHARD_SUPERSEDED = "shard_superseded"  # a newer generation runs elsewhere: this one stopped
    ENGINE_ERROR = "engine_error"


# The kind of the records in a session's Redis event list that carry a sampled failed request
# rather than an event: the monitor files them in the error log.
ERROR_SAMPLE = "error_sample"


# --- states ------------------------------------------------------------------------------------
# Three vocabularies live in Redis, each with its own enum, so that "running" is never
# ambiguous: the session's control state (should its shards send?), a shard's state (is this
# shard sending?), and why a shard stopped. The session's status is the control plane's
# (``SessionStatus``, in the database). Each table below lists every move there is; the
# scripts that move a state receive the names from it (ARGV), never spelled out in Lua.


class ControlState(StrEnum):
    """The session's control state (``lt:s:<id>:control`` field ``state``): what its shards
    obey within a poll. No control state at all means stop too (Redis lost the session)."""

    RUNNING = "running"  # load is wanted
    STOPPING = "stopping"  # every shard stops and flushes


CONTROL_TRANSITIONS: dict[ControlState | None, frozenset[ControlState]] = {
    None: frozenset({ControlState.RUNNING}),  # published at start
    ControlState.RUNNING: frozenset({ControlState.STOPPING}),  # a stop, the duration, a limit
    ControlState.STOPPING: frozenset(),  # for good: a session never starts again
}


class ShardState(StrEnum):
    """Where the current generation of one shard is (the session's ``shards`` hash)."""

    QUEUED = "queued"  # its task is in the load queue (or about to be picked up)
    RUNNING = "running"  # sending; its heartbeat says so
    DONE = "done"  # stopped because the session stopped or its duration ended
    RETIRED = "retired"  # its users were taken away (the session's users went down)
    INTERRUPTED = "interrupted"  # its worker shut down, or it lost Redis
    LOST = "lost"  # its heartbeat expired, or its queued message vanished (the monitor)


_FINISHED = frozenset({ShardState.DONE, ShardState.RETIRED, ShardState.INTERRUPTED})
SHARD_TRANSITIONS: dict[ShardState | None, frozenset[ShardState]] = {
    # ``reassign``: a shard index that gets users for the first time.
    None: frozenset({ShardState.QUEUED}),
    # The shard's first flush; its final flush if it was stopped or retired before it got a
    # worker; the monitor, when its message vanished from the queue.
    ShardState.QUEUED: frozenset(
        {ShardState.RUNNING, ShardState.DONE, ShardState.RETIRED, ShardState.LOST}
    ),
    # The shard's final flush; the monitor, when its heartbeat expired.
    ShardState.RUNNING: _FINISHED | {ShardState.LOST},
    # ``reassign``: the next generation, when the shard index gets users again.
    ShardState.DONE: frozenset({ShardState.QUEUED}),
    ShardState.RETIRED: frozenset({ShardState.QUEUED}),
    ShardState.INTERRUPTED: frozenset({ShardState.QUEUED}),
    # ``reassign`` (re-dispatch). Or it was not dead after all and no replacement was queued
    # (a stopping session replaces no shard): a shard marked lost while queued starts
    # (running), one whose heartbeat lapsed finishes (its final flush).
    ShardState.LOST: frozenset({ShardState.QUEUED, ShardState.RUNNING}) | _FINISHED,
}


def shard_states_leading_to(state: ShardState) -> frozenset[ShardState]:
    """The states a shard may be in for ``state`` to be its next one."""
    return frozenset(
        before
        for before, after in SHARD_TRANSITIONS.items()
        if before is not None and state in after
    )


# Finished for good, and finished but to be replaced while the session runs (the monitor).
SHARD_STATES_COMPLETE = frozenset({ShardState.DONE, ShardState.RETIRED})
SHARD_STATES_REPLACEABLE = frozenset({ShardState.INTERRUPTED, ShardState.LOST})


class StopReason(StrEnum):
    """Why a shard stopped: what ``ShardRunner.run`` (and so ``run_shard``) returns."""

    STOPPED = "stopped"  # the session's control state says stop (or is gone)
    EMERGENCY = "emergency"  # the emergency stop: requests in flight are cut at once
    DEADLINE = "deadline"  # the session's duration is over
    RETIRED = "retired"  # this shard's users were taken away
    DRAINING = "draining"  # this worker is shutting down
    REDIS_LOST = "redis_lost"  # no contact with Redis for longer than a heartbeat lifetime
    SUPERSEDED = "superseded"  # re-dispatched elsewhere while this one was unreachable
    SESSION_GONE = "session_gone"  # Redis no longer knows the session
    PLAN_REFUSED = "plan_refused"  # the plan in Redis is not signed, or leaves the allow-list


# The state a shard records as it stops, by reason. None: the state is no longer this shard's
# to set (a newer generation owns it, or Redis forgot the session).
SHARD_STATE_AFTER_STOP: dict[StopReason, ShardState | None] = {
    StopReason.STOPPED: ShardState.DONE,
    StopReason.EMERGENCY: ShardState.DONE,
    StopReason.DEADLINE: ShardState.DONE,
    StopReason.RETIRED: ShardState.RETIRED,
    StopReason.DRAINING: ShardState.INTERRUPTED,
    StopReason.REDIS_LOST: ShardState.INTERRUPTED,
    StopReason.SUPERSEDED: None,
    StopReason.SESSION_GONE: None,
    StopReason.PLAN_REFUSED: ShardState.DONE,
}
