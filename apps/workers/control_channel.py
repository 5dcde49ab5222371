"""A shard's side of the session's control state in Redis: when to stop, and what load is wanted.

The control plane never talks to a shard directly: it writes the session's control hash,
its assignments, a worker's draining flag or the global emergency stop (see ``control``), and
each shard polls them every ``poll_interval_s``. This class is that poll, kept apart from
the shard's hot path so that the rules for stopping can be read in one place: a stop, an
emergency stop newer than the shard, a draining worker, a newer generation, a retirement,
the session's deadline, or Redis silent for longer than a heartbeat lives. What is not a stop
(the shard's share of users or rate, the load factor, live endpoint weights) is handed to
the shard on every poll, and the shard decides what changed.

The shard's flushes also reach Redis: they count as contact (``heard_from_redis``), and a
flush that is refused stops the shard through ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .control import (
    CLAIM_LOAD_START_SCRIPT,
    EMERGENCY_KEY,
    LOAD_STARTED_FIELD,
    WEIGHTS_FIELD,
    Assignment,
    SessionKeys,
    decode,
    worker_draining_key,
)
from .vocabulary import ControlState, StopReason

logger = logging.getLogger(__name__)

# Called on every poll that does not stop the shard: its assignment, the session's load
# factor, and the live endpoint weights (raw JSON, None until any are set).
FollowControl = Callable[[Assignment, float, bytes | None], None]


class ControlChannel:
    """Polls one shard's control state until it says stop, and says why."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        keys: SessionKeys,
        shard_index: int,
        generation: int,
        hostname: str,
        started_at: float,
        poll_interval_s: float,
        redis_lost_after_s: float,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.shard_index = shard_index
        self.generation = generation
        self.hostname = hostname
        self.started_at = started_at  # an emergency stop from before it does not concern us
        self.poll_interval_s = poll_interval_s
        self.redis_lost_after_s = redis_lost_after_s
        self.deadline: float | None = None  # epoch seconds; set by claim_load_start
        self._stop_reason: StopReason | None = None
        self._wake = asyncio.Event()
        self._last_redis_contact = time.monotonic()

    async def claim_load_start(self, duration_s: float | None) -> None:
        """The session's duration counts from when its load starts: the first shard to begin
        sending records the time (HSETNX: once, atomically), and every shard, re-dispatched
        ones included, ends at that time plus the duration. A shard that waited in the queue
        for a free worker process thus still runs the whole duration."""
        load_started_at = await self.redis.eval(
            CLAIM_LOAD_START_SCRIPT, 1, self.keys.control, LOAD_STARTED_FIELD, repr(time.time())
        )
        # None: the session was forgotten meanwhile; the first flush finds that and stops.
        if load_started_at is not None and duration_s is not None:
            self.deadline = float(load_started_at) + duration_s

    def heard_from_redis(self) -> None:
        """Redis answered (a flush went through): the shard is not cut off."""
        self._last_redis_contact = time.monotonic()

    def stop(self, reason: StopReason) -> None:
        """Stop for ``reason`` now, without waiting for the next poll (the first reason wins)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake.set()

    async def watch(self, follow: FollowControl) -> StopReason:
        """Poll until the shard has to stop; returns why."""
        poll_s = self.poll_interval_s
        draining_key = worker_draining_key(self.hostname)
        while True:
            if self._stop_reason is not None:
                return self._stop_reason
            remaining_s = poll_s
            if self.deadline is not None:
                remaining_s = self.deadline - time.time()
                if remaining_s <= 0:
                    return StopReason.DEADLINE
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hmget(self.keys.control, "state", "factor", WEIGHTS_FIELD)
                    pipe.get(draining_key)
                    pipe.get(EMERGENCY_KEY)
                    pipe.hget(self.keys.assign, str(self.shard_index))
                    (
                        (state, factor, raw_weights),
                        draining,
                        emergency,
                        raw_assignment,
                    ) = await pipe.execute()
                self.heard_from_redis()
            except (RedisError, OSError) as exc:
                silent_s = time.monotonic() - self._last_redis_contact
                if silent_s > self.redis_lost_after_s:
                    logger.error("Session %s shard %s: Redis unreachable for %.0f s (%s); "
                                 "stopping.", self.keys.session_id, self.shard_index, silent_s,
                                 exc)  # fmt: skip
                    return StopReason.REDIS_LOST
            else:
                wanted = self._stop_reason_or_assignment(state, draining, emergency, raw_assignment)
                if isinstance(wanted, StopReason):
                    return wanted
                follow(wanted, float(factor) if factor is not None else 1.0, raw_weights)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(poll_s, remaining_s))

    def _stop_reason_or_assignment(
        self,
        state: bytes | None,
        draining: bytes | None,
        emergency: bytes | None,
        raw_assignment: bytes | None,
    ) -> StopReason | Assignment:
        """Why the shard has to stop, or else its current assignment. The emergency flag
        first: the emergency stop sets it before it stops each session, so a shard that sees
        its session stopping for that reason knows it."""
        if emergency is not None and float(emergency) >= self.started_at:
            return StopReason.EMERGENCY
        if decode(state) != ControlState.RUNNING:
            return StopReason.STOPPED
        if draining is not None:
            return StopReason.DRAINING
        assignment = Assignment.decode(raw_assignment)
        if assignment is None or assignment.generation != self.generation:
            return StopReason.SUPERSEDED
        if assignment.users == 0:
            return StopReason.RETIRED
        return assignment
