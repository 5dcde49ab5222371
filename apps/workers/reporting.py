"""What a shard tells Redis: its statistics, events, sampled requests and heartbeat, in flushes.

The hot loop only counts in memory (``ShardStats``) and appends to local lists; this class
carries all of that to Redis about once a second in one atomic script (``FLUSH_SCRIPT``),
with the shard's heartbeat, which expires after ``heartbeat_ttl_s`` so the monitor notices
a shard that died. It lives apart from the shard's sending so that what leaves the worker,
how often and how much of it, is decided in one place:

- a flush that fails keeps its counts for the next one, and the last flush (with the shard's
  final state) is retried for a heartbeat's lifetime, so a Redis restart loses nothing;
- events are bounded while Redis is unreachable, failures and requests are sampled a few per
  endpoint each flush, and an engine error is logged once a minute: a target that fails every
  request cannot flood Redis or the logs;
- a flush that Redis refuses (a newer generation holds the shard, or the session is gone)
  stops the shard through its control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from .control import (
    FLUSH_APPLIED,
    FLUSH_SCRIPT,
    FLUSH_SUPERSEDED,
    flush_script_args,
    flush_script_keys,
)
from .control_channel import ControlChannel
from .plan import EndpointPlan
from .secrets import endpoint_secrets, mask_secrets
from .stats import ShardStats, StatsDelta
from .vocabulary import ERROR_SAMPLE, EngineEventKind, ShardState, StopReason

logger = logging.getLogger(__name__)

EVENTS_HELD = 100  # events kept locally while Redis is unreachable
ERROR_REPORT_INTERVAL_S = 60.0  # the same engine error is logged once a minute per endpoint
ERROR_SAMPLES_PER_FLUSH = 3  # sampled failures per endpoint and class, per flush
ERROR_BODY_CHARS = 200  # of a failed response's body, kept in its sample
REQUEST_SAMPLES_PER_FLUSH = 3  # requests per endpoint, per flush, in the request log
REQUEST_SAMPLE = "request"  # the sample counter's key for the request log (errors: a class)
# A shard's last counts are retried for a heartbeat's lifetime, and at least this long: a
# Redis that restarts takes a few seconds to load its data.
FINAL_FLUSH_RETRY_MIN_S = 5.0

# The shard's own part of its heartbeat (users, load, breakers), read at each flush.
ShardStatus = Callable[[], dict[str, object]]


class ShardReporter:
    """Flushes one shard's figures and events to Redis, with its heartbeat."""

    def __init__(
        self,
        *,
        control: ControlChannel,
        endpoints: Sequence[EndpointPlan],
        stats: ShardStats,
        status: ShardStatus,
        flush_interval_s: float,
        heartbeat_ttl_s: float,
    ) -> None:
        # Which shard this is, and its Redis connection: the control channel's, read once.
        self.keys = control.keys
        self.session_id = control.keys.session_id
        self.shard_index = control.shard_index
        self.generation = control.generation
        self.hostname = control.hostname
        self.started_at = control.started_at
        self.endpoints = endpoints
        self.stats = stats
        self.control = control
        self.status = status
        self.flush_interval_s = flush_interval_s
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self._flush_script = control.redis.register_script(FLUSH_SCRIPT)
        self._periodic_flushes_end = asyncio.Event()
        self._unflushed = StatsDelta()
        self._events: list[dict] = []
        self._error_reported_at: dict[tuple[str, str], float] = {}
        # Samples taken since the last flush, per (endpoint, failure class or REQUEST_SAMPLE).
        self._samples_taken: dict[tuple[int, str], int] = {}
        self._request_samples: list[dict] = []
        self._last_flush_at = time.monotonic()
        # The request log shows paths, never query strings (they may carry credentials).
        # The request log's paths, masked once: a path may carry a token as well as a query.
        self.request_paths = [
            mask_secrets(
                urlsplit(endpoint.url).path or "/",
                endpoint_secrets(endpoint.headers, endpoint.body, endpoint.url),
            )
            for endpoint in endpoints
        ]

    # --- what the shard reports between flushes ----------------------------------------------

    def event(self, kind: str, message: str, **details: object) -> None:
        if len(self._events) < EVENTS_HELD:
            self._events.append(
                {
                    "at": time.time(),
                    "kind": str(kind),
                    "message": message,
                    "shard": self.shard_index,
                    "hostname": self.hostname,
                    **details,
                }
            )

    def sample_error(
        self, index: int, failure: str, status: int | None, detail: str, trace_id: str
    ) -> None:
        """Keep a few failures per endpoint and class each flush for the session's error log:
        enough to see what fails and how, bounded however many requests fail. A target may
        echo the request back, so the endpoint's secrets are masked by value before the
        sample leaves the worker (the body's start may end inside one: ``cut_short``). The
        trace id (with traceparent on) finds the failing request in the target's APM."""
        if not self._take_sample((index, failure), ERROR_SAMPLES_PER_FLUSH):
            return
        endpoint = self.endpoints[index]
        secrets = endpoint_secrets(endpoint.headers, endpoint.body, endpoint.url)
        self.event(
            ERROR_SAMPLE,
            mask_secrets(detail, secrets, cut_short=True)[: ERROR_BODY_CHARS + 100],
            endpoint=endpoint.name,
            failure_class=str(failure),
            status=status,
            trace_id=trace_id,
        )

    def sample_request(
        self, index: int, status: int | None, failure: str | None, latency_us: int, trace_id: str
    ) -> None:
        """The session's request log: the first few requests per endpoint each flush, what
        was sent and how it went (never headers or bodies)."""
        if not self._take_sample((index, REQUEST_SAMPLE), REQUEST_SAMPLES_PER_FLUSH):
            return
        endpoint = self.endpoints[index]
        self._request_samples.append(
            {
                "at": time.time(),
                "endpoint": endpoint.name,
                "method": endpoint.method,
                "path": self.request_paths[index],
                "status": status,
                "failure_class": str(failure or ""),
                "latency_ms": latency_us / 1000,
                "hostname": self.hostname,
                "trace_id": trace_id,
            }
        )

    def _take_sample(self, key: tuple[int, str], per_flush: int) -> bool:
        """Whether one more sample of ``key`` fits in this flush (and count it if so)."""
        taken = self._samples_taken.get(key, 0)
        if taken >= per_flush:
            return False
        self._samples_taken[key] = taken + 1
        return True

    def report_engine_error(self, endpoint: EndpointPlan, exc: Exception) -> None:
        """Log the traceback and record an event, once a minute per endpoint and error type:
        an error that repeats on every request must not flood the logs."""
        key = (endpoint.name, type(exc).__name__)
        now = time.monotonic()
        if now - self._error_reported_at.get(key, -ERROR_REPORT_INTERVAL_S) < (
            ERROR_REPORT_INTERVAL_S
        ):
            return
        self._error_reported_at[key] = now
        logger.error("Session %s: error in the load engine sending %s %s (repeats are logged "
                     "once a minute)", self.session_id, endpoint.method, endpoint.name,
                     exc_info=exc)  # fmt: skip
        self.event(EngineEventKind.ENGINE_ERROR, f"{endpoint.name}: {type(exc).__name__}: {exc}")

    # --- flushes -----------------------------------------------------------------------------

    async def flush_periodically(self, before_each: Callable[[], None]) -> None:
        """Flush every ``flush_interval_s`` until ``end_periodic_flushes``; ``before_each``
        runs first each time (the shard's once-a-second look at its resources). A flush that
        fails is retried at the next one."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._periodic_flushes_end.wait(), timeout=self.flush_interval_s
                )
            if self._periodic_flushes_end.is_set():
                return  # the final flush follows
            before_each()
            try:
                await self.flush(None)
            except (RedisError, OSError) as exc:
                logger.warning("Session %s shard %s: flush failed, will retry: %s",
                               self.session_id, self.shard_index, exc)  # fmt: skip

    def end_periodic_flushes(self) -> None:
        """``flush_periodically`` returns after the flush in progress, if any. Not a
        cancellation: a flush cut in the middle of its Redis call could apply its counts and
        keep them for the final flush too, and a cancellation swallowed inside the client
        would leave the shard waiting for ever."""
        self._periodic_flushes_end.set()

    def _heartbeat(self, requests: int) -> dict:
        now = time.monotonic()
        elapsed_s = max(now - self._last_flush_at, 1e-6)
        self._last_flush_at = now
        return {
            "session": self.session_id,
            "shard": self.shard_index,
            "generation": self.generation,
            "hostname": self.hostname,
            "pid": os.getpid(),
            **self.status(),
            "rate": round(requests / elapsed_s, 2),
            "started_at": self.started_at,
            "at": time.time(),
        }

    async def flush(self, new_state: ShardState | None, *, final: bool = False) -> int:
        """Push what happened since the last successful flush; keep it for retry on failure."""
        self._unflushed.merge(self.stats.take_delta())
        delta = self._unflushed
        # Users keep adding events and samples while the script runs: only those sent now are
        # dropped after it.
        events_sent, samples_sent = len(self._events), len(self._request_samples)
        result: int = await self._flush_script(
            keys=flush_script_keys(self.keys, self.shard_index),
            args=flush_script_args(
                shard_index=self.shard_index,
                generation=self.generation,
                new_state=new_state,
                heartbeat=None if final else self._heartbeat(delta.requests),
                events=self._events,
                request_samples=self._request_samples,
                increments=delta.increments,
                maxima=delta.maxima,
                minima=delta.minima,
                series=delta.series,
                heartbeat_ttl_s=self.heartbeat_ttl_s,
                session_id=self.session_id,
            ),
        )
        self._unflushed = StatsDelta()
        del self._events[:events_sent]
        del self._request_samples[:samples_sent]
        self._samples_taken.clear()
        self.control.heard_from_redis()
        if result == FLUSH_SUPERSEDED:
            self.control.stop(StopReason.SUPERSEDED)
        elif result != FLUSH_APPLIED:
            self.control.stop(StopReason.SESSION_GONE)
        return result

    async def final_flush(self, final_state: ShardState | None) -> None:
        """The last counts and the finished state, retried until Redis answers or gives up."""
        deadline = time.monotonic() + max(self.heartbeat_ttl_s, FINAL_FLUSH_RETRY_MIN_S)
        while True:
            try:
                await self.flush(final_state, final=True)
                return
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    logger.error("Session %s shard %s: final statistics lost (%s requests): %s",
                                 self.session_id, self.shard_index,
                                 self._unflushed.requests, exc)  # fmt: skip
                    return
                await asyncio.sleep(0.5)
