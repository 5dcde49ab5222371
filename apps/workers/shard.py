"""A shard: a slice of a session's virtual users on one asyncio loop, in one worker process.

This is where requests are sent. Each virtual user picks an endpoint by weight, sends the
request with the endpoint's timeout, records the outcome in memory and thinks for a uniform
random time. Beside the users, one task flushes the statistics to Redis about once a second
(with the shard's heartbeat) and one watches the session's control state, so a stop reaches
every user within CONTROL_POLL_INTERVAL_S. The hot loop never touches the Django database.

Stopping is cooperative and loses nothing: users that are thinking are cancelled at once,
requests already in flight are awaited for up to STOP_GRACE_S and then cancelled and counted
as ``cancelled``, and a final flush marks the shard finished in the same atomic step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from apps.sessions.choices import FailureClass

from .control import (
    FLUSH_SCRIPT,
    ControlState,
    SessionKeys,
    ShardState,
    decode,
    flush_script_args,
    worker_draining_key,
)
from .selection import EndpointSelector
from .stats import ShardStats, StatsDelta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSettings:
    """The engine's timings, passed in so that tests can drive a shard directly."""

    flush_interval_s: float = 1.0
    control_poll_interval_s: float = 0.1
    stop_grace_s: float = 5.0
    heartbeat_ttl_s: float = 10.0


@dataclass(frozen=True)
class EndpointPlan:
    name: str
    method: str
    url: str
    timeout_s: float
    weight: float
    headers: dict
    body: str

    @classmethod
    def from_plan(cls, data: dict) -> EndpointPlan:
        return cls(
            name=data["name"],
            method=data["method"],
            url=data["url"],
            timeout_s=float(data["timeout_s"]),
            weight=float(data["weight"]),
            headers=dict(data.get("headers") or {}),
            body=data.get("body") or "",
        )


class StopReason:
    STOPPED = "stopped"  # the session's control state says stop (or is gone)
    DEADLINE = "deadline"  # the session's duration is over
    DRAINING = "draining"  # this worker is shutting down
    REDIS_LOST = "redis_lost"  # no contact with Redis for longer than a heartbeat lifetime


def classify_status(status: int) -> str | None:
    if status >= 500:
        return FailureClass.HTTP_5XX
    if status >= 400:
        return FailureClass.HTTP_4XX
    return None


class _VirtualUser:
    __slots__ = ("in_flight", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.in_flight = False


class ShardRunner:
    """Runs shard ``shard_index`` of ``session_id`` until its session stops."""

    def __init__(
        self,
        *,
        session_id: int,
        shard_index: int,
        redis_url: str,
        hostname: str,
        settings: ShardSettings,
    ) -> None:
        self.session_id = session_id
        self.shard_index = shard_index
        self.redis_url = redis_url
        self.hostname = hostname
        self.settings = settings
        self.keys = SessionKeys(session_id)
        self._stopping = False
        self._users: list[_VirtualUser] = []
        self._unflushed = StatsDelta()
        self._last_flush_at = time.monotonic()
        self._last_redis_contact = time.monotonic()

    async def run(self) -> str:
        """Returns the shard's final state (see ``ShardState``)."""
        self.redis = aioredis.Redis.from_url(
            self.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        try:
            return await self._run()
        finally:
            await self.redis.aclose()

    async def _run(self) -> str:
        raw_plan, state = await self.redis.mget(self.keys.plan, self.keys.state)
        if raw_plan is None or decode(state) != ControlState.RUNNING:
            # Stopped (or already finalized) before this shard got a worker: send nothing.
            logger.info(
                "Session %s shard %s: session not running, skipping.",
                self.session_id,
                self.shard_index,
            )
            if raw_plan is not None:
                await self.redis.hset(self.keys.shards, str(self.shard_index), ShardState.DONE)
            return ShardState.DONE
        plan = json.loads(raw_plan)
        self.endpoints = [EndpointPlan.from_plan(item) for item in plan["endpoints"]]
        self.selector = EndpointSelector([endpoint.weight for endpoint in self.endpoints])
        self.interval_min = float(plan["request_interval_min"])
        self.interval_max = float(plan["request_interval_max"])
        self.deadline = plan.get("deadline")
        self.user_count = int(plan["shards"][self.shard_index])
        self.stats = ShardStats(len(self.endpoints))
        self._flush_script = self.redis.register_script(FLUSH_SCRIPT)

        await self._flush(ShardState.RUNNING)
        logger.info(
            "Session %s shard %s: %s users on %s.",
            self.session_id,
            self.shard_index,
            self.user_count,
            self.hostname,
        )

        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        ) as self.http:
            for _ in range(self.user_count):
                user = _VirtualUser()
                user.task = asyncio.create_task(self._user_loop(user))
                self._users.append(user)
            flusher = asyncio.create_task(self._flush_loop())
            reason = await self._watch_control()
            await self._stop_users()
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

        final_state = (
            ShardState.DONE
            if reason in (StopReason.STOPPED, StopReason.DEADLINE)
            else ShardState.INTERRUPTED
        )
        await self._final_flush(final_state)
        logger.info(
            "Session %s shard %s: finished (%s).", self.session_id, self.shard_index, reason
        )
        return final_state

    # --- virtual users -----------------------------------------------------------------------

    async def _user_loop(self, user: _VirtualUser) -> None:
        rng = random.Random()
        interval_min, interval_max = self.interval_min, self.interval_max
        while not self._stopping:
            endpoint = self.selector.pick(rng)
            user.in_flight = True
            try:
                await self._send(endpoint)
            finally:
                user.in_flight = False
            if self._stopping:
                return
            think_s = rng.uniform(interval_min, interval_max)
            if think_s > 0:
                await asyncio.sleep(think_s)

    async def _send(self, index: int) -> None:
        endpoint = self.endpoints[index]
        started = time.perf_counter()
        failure: str | None = None
        try:
            async with self.http.request(
                endpoint.method,
                endpoint.url,
                headers=endpoint.headers or None,
                data=endpoint.body or None,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                failure = classify_status(response.status)
        except asyncio.CancelledError:
            # Cancelled at stop after the grace period: counted, never lost.
            self.stats.record(index, None, FailureClass.CANCELLED, int(time.time()))
            raise
        except TimeoutError:
            failure = FailureClass.TIMEOUT
        except aiohttp.ClientError:
            failure = FailureClass.NETWORK
        except Exception:
            failure = FailureClass.APPLICATION
            logger.exception(
                "Session %s: error in the load engine sending %s %s",
                self.session_id,
                endpoint.method,
                endpoint.name,
            )
        latency_us = int((time.perf_counter() - started) * 1_000_000)
        self.stats.record(index, latency_us, failure, int(time.time()))

    async def _stop_users(self) -> None:
        """Stop sending now; let requests in flight finish within the grace period."""
        self._stopping = True
        for user in self._users:
            if not user.in_flight:
                user.task.cancel()
        tasks = [user.task for user in self._users]
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=self.settings.stop_grace_s)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- control -----------------------------------------------------------------------------

    async def _watch_control(self) -> str:
        poll_s = self.settings.control_poll_interval_s
        draining_key = worker_draining_key(self.hostname)
        while True:
            if self.deadline is not None:
                remaining_s = self.deadline - time.time()
                if remaining_s <= 0:
                    return StopReason.DEADLINE
            else:
                remaining_s = poll_s
            try:
                state, draining = await self.redis.mget(self.keys.state, draining_key)
                self._last_redis_contact = time.monotonic()
            except (RedisError, OSError) as exc:
                silent_s = time.monotonic() - self._last_redis_contact
                if silent_s > self.settings.heartbeat_ttl_s:
                    logger.error(
                        "Session %s shard %s: Redis unreachable for %.0f s (%s); stopping.",
                        self.session_id,
                        self.shard_index,
                        silent_s,
                        exc,
                    )
                    return StopReason.REDIS_LOST
            else:
                if decode(state) != ControlState.RUNNING:
                    return StopReason.STOPPED
                if draining is not None:
                    return StopReason.DRAINING
            await asyncio.sleep(min(poll_s, remaining_s))

    # --- statistics --------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval_s)
            try:
                await self._flush(None)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "Session %s shard %s: flush failed, will retry: %s",
                    self.session_id,
                    self.shard_index,
                    exc,
                )

    def _heartbeat(self, requests: int) -> dict:
        now = time.monotonic()
        elapsed_s = max(now - self._last_flush_at, 1e-6)
        self._last_flush_at = now
        return {
            "session": self.session_id,
            "shard": self.shard_index,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "users": self.user_count,
            "rate": round(requests / elapsed_s, 2),
            "at": time.time(),
        }

    async def _flush(self, new_state: str | None, *, final: bool = False) -> None:
        """Push the delta since the last successful flush; keep it for retry on failure."""
        self._unflushed.merge(self.stats.take_delta())
        delta = self._unflushed
        heartbeat = None if final else self._heartbeat(delta.requests)
        await self._flush_script(
            keys=[
                self.keys.stats,
                self.keys.series,
                self.keys.shards,
                self.keys.heartbeat(self.shard_index),
            ],
            args=flush_script_args(
                self.shard_index,
                new_state,
                heartbeat,
                delta.increments,
                delta.maxima,
                delta.minima,
                delta.series,
            ),
        )
        self._unflushed = StatsDelta()
        self._last_redis_contact = time.monotonic()

    async def _final_flush(self, final_state: str) -> None:
        """The last counts and the finished state, retried until Redis answers or gives up."""
        deadline = time.monotonic() + max(self.settings.heartbeat_ttl_s, 5.0)
        while True:
            try:
                await self._flush(final_state, final=True)
                return
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    logger.error(
                        "Session %s shard %s: final statistics lost (%s requests): %s",
                        self.session_id,
                        self.shard_index,
                        self._unflushed.requests,
                        exc,
                    )
                    return
                await asyncio.sleep(0.5)
