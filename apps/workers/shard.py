"""A shard: a slice of a session's virtual users on one asyncio loop, in one worker process.

This is where requests are sent (``_send``). In the closed model each virtual user picks an
endpoint by weight, sends it with the endpoint's timeout, records the outcome in memory and
thinks for a uniform random time; in the open model an arrival schedule hands requests due at
fixed times to free users (see ``pacing``). Beside them, one task flushes statistics and
events to Redis about once a second with the shard's heartbeat, and one watches the
session's control state, so a stop, an emergency stop or a new user count reaches the shard
within CONTROL_POLL_INTERVAL_S. The hot loop never touches the Django database.

When the session's plan asks for a request log (``enable_logging``), the first few requests
per endpoint of every flush are sampled, whatever their outcome, with the error samples'
counter check: the hot loop pays one dictionary lookup per request for it.

Failures that say the target is unavailable open the endpoint's circuit breaker (only probes
are sent until it recovers) and make the user back off with jitter; the session's load factor
(set by the monitor when the error rate stays high) and the resource guard scale the load.

Stopping is cooperative and loses nothing: users that are thinking are cancelled at once,
requests already in flight are awaited for up to STOP_GRACE_S and then cancelled and counted
as ``cancelled``, and a final flush marks the shard finished in the same atomic step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import cookies, pacing
from .breaker import DENIED, PROBE, UNAVAILABLE_STATUSES, CircuitBreaker
from .checks import DEFAULT_CHECK_BODY_LIMIT, ResponseRules, unexpected_status_class
from .control import (
    CLAIM_LOAD_START_SCRIPT,
    EMERGENCY_KEY,
    FLUSH_APPLIED,
    FLUSH_SCRIPT,
    FLUSH_SUPERSEDED,
    LOAD_STARTED_FIELD,
    REDIS_SOCKET_TIMEOUT_S,
    WEIGHTS_FIELD,
    Assignment,
    SessionKeys,
    decode,
    flush_script_args,
    flush_script_keys,
    worker_draining_key,
)
from .extraction import Extraction, TooSlow, parse_document, parse_extractions
from .feed_cursor import FeedCursor
from .http import HttpClient, PreparedRequest, Response
from .plan import EndpointPlan, FlowPlan, Plan
from .resources import ResourceGuard, raise_open_files_limit
from .secrets import endpoint_secrets, mask_secrets
from .selection import EndpointSelector
from .stats import MISSED, SUPPRESSED, ShardStats, StatsDelta
from .templating import TemplatedRequest, compile_request
from .userstate import UserState
from .vocabulary import (
    ERROR_SAMPLE,
    SHARD_STATE_AFTER_STOP,
    ControlState,
    EngineEventKind,
    FailureClass,
    ShardState,
    StopReason,
)

logger = logging.getLogger(__name__)

SUPPRESSED_PAUSE_S = 0.05  # a user whose endpoint's breaker is open waits at least this
EVENTS_HELD = 100  # events kept locally while Redis is unreachable
ERROR_REPORT_INTERVAL_S = 60.0  # the same engine error is logged once a minute per endpoint
ERROR_SAMPLES_PER_FLUSH = 3  # sampled failures per endpoint and class, per flush
ERROR_BODY_CHARS = 200  # of a failed response's body, kept in its sample
REQUEST_SAMPLES_PER_FLUSH = 3  # requests per endpoint, per flush, in the request log
REQUEST_SAMPLE = "request"  # the sample counter's key for the request log (errors: a class)
# A shard's last counts are retried for a heartbeat's lifetime, and at least this long: a
# Redis that restarts takes a few seconds to load its data.
FINAL_FLUSH_RETRY_MIN_S = 5.0


@dataclass(frozen=True)
class ShardSettings:
    """The engine's tunables, passed in so that tests can drive a shard directly."""

    flush_interval_s: float = 1.0
    control_poll_interval_s: float = 0.1
    stop_grace_s: float = 5.0
    heartbeat_ttl_s: float = 10.0
    breaker_failures: int = 10
    breaker_cooldown_s: float = 2.0
    breaker_max_cooldown_s: float = 30.0
    backoff_base_s: float = 0.1
    backoff_max_s: float = 10.0
    max_rss_mb: float = 0.0
    max_cpu_percent: float = 0.0
    check_body_limit: int = DEFAULT_CHECK_BODY_LIMIT


class _VirtualUser:
    __slots__ = ("in_flight", "retiring", "started", "state", "task")
    task: asyncio.Task[None]  # set as soon as the user is made (the task needs the user)

    def __init__(self, state: UserState) -> None:
        self.in_flight = False
        self.retiring = False
        self.started = False
        self.state = state  # what the templates and flows read and write


class ShardRunner:
    """Runs generation ``generation`` of shard ``shard_index`` until it has to stop."""

    def __init__(
        self,
        *,
        session_id: int,
        shard_index: int,
        generation: int,
        redis_url: str,
        hostname: str,
        settings: ShardSettings,
    ) -> None:
        self.session_id = session_id
        self.shard_index = shard_index
        self.generation = generation
        self.redis_url = redis_url
        self.hostname = hostname
        self.settings = settings
        self.keys = SessionKeys(session_id)
        self._stopping = False
        self._stop_reason: StopReason | None = None
        self._wake = asyncio.Event()
        self._flushes_end = asyncio.Event()  # the periodic flushes stop (see _run)
        self._users: list[_VirtualUser] = []  # the active ones; retiring users leave it
        self._tasks: set[asyncio.Task] = set()  # every user and open-model request
        self._unflushed = StatsDelta()
        self._events: list[dict] = []
        self._error_reported_at: dict[tuple[str, str], float] = {}
        # Samples taken since the last flush, per (endpoint, failure class or REQUEST_SAMPLE).
        self._samples_taken: dict[tuple[int, str], int] = {}
        self._request_samples: list[dict] = []
        self._last_flush_at = time.monotonic()
        self._last_redis_contact = time.monotonic()
        self.session_factor = 1.0
        self.assignment = Assignment(generation, 0, 0.0)
        # Open model
        self._schedule: pacing.ArrivalSchedule | None = None
        self._schedule_start = 0.0
        self._arrival = 0
        self._in_flight = 0
        self._scheduler: asyncio.Task | None = None

    async def run(self) -> StopReason:
        """Returns why the shard stopped."""
        raise_open_files_limit()
        self.redis = aioredis.Redis.from_url(
            self.redis_url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        )
        try:
            return await self._run()
        finally:
            await self.redis.aclose()

    async def _run(self) -> StopReason:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.plan)
            pipe.hmget(self.keys.control, "state", "factor", WEIGHTS_FIELD)
            pipe.hgetall(self.keys.assign)
            raw_plan, (state, factor, raw_weights), assignments = await pipe.execute()
        raw_assignment = assignments.get(str(self.shard_index).encode())
        assignment = Assignment.decode(raw_assignment) if raw_assignment is not None else None
        if raw_plan is None or assignment is None or assignment.generation != self.generation:
            logger.info("Session %s shard %s/%s: no longer wanted, skipping.",
                        self.session_id, self.shard_index, self.generation)  # fmt: skip
            return StopReason.SUPERSEDED if raw_plan is not None else StopReason.SESSION_GONE
        self._setup(Plan.from_json(json.loads(raw_plan)), assignment, factor, raw_weights)
        self._number_users(assignments)
        self._flush_script = self.redis.register_script(FLUSH_SCRIPT)
        if decode(state) != ControlState.RUNNING or assignment.users == 0:
            # Stopped (or retired) before this shard got a worker: send nothing.
            reason = StopReason.STOPPED if assignment.users else StopReason.RETIRED
            await self._final_flush(SHARD_STATE_AFTER_STOP[reason])
            return reason

        await self._claim_load_start()
        await self._flush(ShardState.RUNNING)
        logger.info("Session %s shard %s/%s: %s users (%s model) on %s.", self.session_id,
                    self.shard_index, self.generation, assignment.users,
                    "open" if self.open_model else "closed", self.hostname)  # fmt: skip
        self.http = HttpClient()
        try:
            self._apply_load(initial=True)
            flusher = asyncio.create_task(self._flush_loop())
            reason = await self._watch_control()
            await self._stop_everything()
            # Not cancelled: a flush cut in the middle of its Redis call could apply its counts
            # and keep them for the final flush too, and a cancellation swallowed inside the
            # client would leave this waiting for ever. Told to stop, it ends after its flush.
            self._flushes_end.set()
            await asyncio.gather(flusher, return_exceptions=True)
        finally:
            self.http.close()

        if reason == StopReason.SUPERSEDED:
            self._event(EngineEventKind.SHARD_SUPERSEDED,
                        f"Shard {self.shard_index} generation {self.generation} on "
                        f"{self.hostname} was superseded and stopped.")  # fmt: skip
        await self._final_flush(SHARD_STATE_AFTER_STOP[reason])
        logger.info("Session %s shard %s/%s: finished (%s).",
                    self.session_id, self.shard_index, self.generation, reason)  # fmt: skip
        return reason

    def _setup(
        self, plan: Plan, assignment: Assignment, factor: bytes | None, raw_weights: bytes | None
    ) -> None:
        self.endpoints = plan.endpoints
        self.flows: tuple[FlowPlan, ...] = plan.flows
        # What each flow step takes from its answer (compiled once; empty for the rest).
        self.extractions: list[tuple[Extraction, ...]] = [() for _ in self.endpoints]
        for flow in self.flows:
            for step in flow.steps:
                self.extractions[step.endpoint] = parse_extractions(list(step.extract))
        # Users keep the target's cookies when the plan has flows (a login must hold).
        self.keep_cookies = bool(self.flows)
        self.feed = plan.feed
        self.feed_cursor: FeedCursor | None = None  # set by _number_users (needs the shards)
        self.first_user_id = 1
        self._next_user_id = 1
        # The session's header, the same on every request, is in the prepared bytes; a
        # traceparent is spliced into them per request (``PreparedRequest.traced``).
        self.traceparent = plan.traceparent
        session_headers = {plan.session_header: str(self.session_id)} if plan.session_header else {}
        self.rules = [
            ResponseRules(
                endpoint.expected_statuses, list(endpoint.checks), self.settings.check_body_limit
            )
            for endpoint in self.endpoints
        ]
        columns = plan.feed.columns if plan.feed is not None else ()
        self.requests = [
            self._prepare(
                endpoint, rules, extractions, session_headers, plan.traceparent, columns,
                self.keep_cookies,
            )
            for endpoint, rules, extractions in zip(
                self.endpoints, self.rules, self.extractions, strict=True
            )
        ]  # fmt: skip
        self._use_weights(raw_weights)
        self.interval_min = plan.request_interval_min
        self.interval_max = plan.request_interval_max
        self.duration_s = plan.duration_s
        self.deadline: float | None = None  # set by _claim_load_start
        self.ramp_up_s = plan.ramp_up_s
        self.open_model = plan.open_model
        self.request_log = plan.request_log
        # The request log shows paths, never query strings (they may carry credentials).
        # The request log's paths, masked once: a path may carry a token as well as a query.
        self.request_paths = [
            mask_secrets(
                urlsplit(endpoint.url).path or "/",
                endpoint_secrets(endpoint.headers, endpoint.body, endpoint.url),
            )
            for endpoint in self.endpoints
        ]
        self.assignment = assignment
        self.session_factor = float(factor) if factor is not None else 1.0
        self.stats = ShardStats(len(self.endpoints), len(self.flows))
        self._anonymous = UserState(0)
        self._state_per_arrival = self.feed is not None or any(
            isinstance(request, TemplatedRequest) for request in self.requests
        )

        self.breakers = [
            CircuitBreaker(
                self.settings.breaker_failures,
                self.settings.breaker_cooldown_s,
                self.settings.breaker_max_cooldown_s,
            )
            for _ in self.endpoints
        ]
        self.guard = ResourceGuard(self.settings.max_rss_mb, self.settings.max_cpu_percent)
        self.started_at = time.time()

    async def _claim_load_start(self) -> None:
        """The session's duration counts from when its load starts: the first shard to begin
        sending records the time (HSETNX: once, atomically), and every shard, re-dispatched
        ones included, ends at that time plus the duration. A shard that waited in the queue
        for a free worker process thus still runs the whole duration."""
        load_started_at = await self.redis.eval(
            CLAIM_LOAD_START_SCRIPT, 1, self.keys.control, LOAD_STARTED_FIELD, repr(time.time())
        )
        # None: the session was forgotten meanwhile; the first flush finds that and stops.
        if load_started_at is not None and self.duration_s is not None:
            self.deadline = float(load_started_at) + self.duration_s

    def _number_users(self, assignments: dict[bytes, bytes]) -> None:
        """Users are numbered across the session (``{{ user_id }}``, a ``per_user`` feed row):
        this shard's come after the users of the shards before it, as assigned at its start.
        Users added later by a live change continue from there (they may then share numbers
        with another shard's)."""
        before, shard_count = 0, 0
        for raw_index, raw in assignments.items():
            shard_count += 1
            other = Assignment.decode(raw)
            if int(raw_index) < self.shard_index:
                before += other.users
        self.first_user_id = self._next_user_id = before + 1
        if self.feed is not None:
            self.feed_cursor = FeedCursor(self.feed, self.shard_index, max(shard_count, 1))

    def _new_user_state(self) -> UserState:
        state = UserState(self._next_user_id)
        self._next_user_id += 1
        return state

    def _prepare(
        self,
        endpoint: EndpointPlan,
        rules: ResponseRules,
        extractions: tuple[Extraction, ...],
        session_headers: dict[str, str],
        traceparent: bool,
        columns: tuple[str, ...],
        keep_cookies: bool,
    ) -> PreparedRequest | TemplatedRequest | ValueError:
        """The endpoint's request, built once: its bytes, or its compiled template; or why it
        cannot be built (every pick of the endpoint then fails as an ``application`` error,
        reported once a minute). An endpoint whose checks or extractions read the body or
        headers asks the client to keep them, and a plan with flows its cookies."""
        try:
            request = compile_request(
                endpoint,
                default_headers=session_headers,
                traceparent=traceparent,
                columns=columns,
            )
        except ValueError as exc:
            return exc
        prepared = request.prepared if isinstance(request, TemplatedRequest) else request
        body_limit = rules.body_limit
        if any(extraction.source != "header" for extraction in extractions):
            body_limit = max(body_limit, self.settings.check_body_limit)
        keep_headers = rules.needs_headers or any(
            extraction.source == "header" for extraction in extractions
        )
        if body_limit > prepared.body_limit or keep_headers or keep_cookies:
            prepared = replace(
                prepared,
                body_limit=max(prepared.body_limit, body_limit),
                keep_headers=keep_headers,
                keep_cookies=keep_cookies,
            )
            if isinstance(request, TemplatedRequest):
                return replace(request, prepared=prepared)
            return prepared
        return request

    # --- how much load -----------------------------------------------------------------------

    def _scale(self) -> float:
        return self.session_factor * self.guard.factor

    def _apply_load(self, initial: bool = False) -> None:
        """Bring users (closed model) or the arrival rate (open model) to what is wanted."""
        if self.open_model:
            rate = self.assignment.rps * self._scale()
            if self._schedule is None or rate != self._schedule.rate_rps:
                # A ramp applies to the start only; a later change takes effect at once.
                self._schedule = (
                    pacing.ArrivalSchedule(rate, self.ramp_up_s if initial else 0.0)
                    if rate > 0
                    else None
                )
                self._schedule_start = time.perf_counter()
                self._arrival = 0
            if self._scheduler is None:
                self._scheduler = asyncio.create_task(self._arrivals())
            return
        users = self.assignment.users
        wanted = max(1, round(users * self._scale())) if users else 0
        delays = pacing.ramp_offsets_s(wanted, self.ramp_up_s) if initial else None
        self._resize_users(wanted, delays)

    def _resize_users(self, wanted: int, start_delays: list[float] | None = None) -> None:
        while len(self._users) < wanted:
            delay = start_delays[len(self._users)] if start_delays else 0.0
            user = _VirtualUser(self._new_user_state())
            user.task = self._track(self._user_loop(user, delay))
            self._users.append(user)
        while len(self._users) > wanted:
            user = self._users.pop()
            user.retiring = True
            if not user.in_flight:
                user.task.cancel()

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def active_users(self) -> int:
        if self.open_model:
            return self.assignment.users
        return sum(1 for user in self._users if user.started)

    # --- sending -----------------------------------------------------------------------------

    async def _user_loop(self, user: _VirtualUser, start_delay_s: float) -> None:
        """A closed-model virtual user: send, wait for the answer, think."""
        rng = random.Random()
        if start_delay_s > 0:
            await asyncio.sleep(start_delay_s)
        user.started = True
        state = user.state
        failures_in_a_row = 0
        endpoint_count = len(self.endpoints)
        while not (self._stopping or user.retiring):
            index = self.selector.pick(rng)
            if self.feed_cursor is not None:
                state.row = self.feed_cursor.row_for(state)
            if index >= endpoint_count:
                unavailable = await self._run_flow(index - endpoint_count, state, user)
                if self._stopping or user.retiring:
                    return
            else:
                admission = self.breakers[index].admit()
                if admission == DENIED:
                    self.stats.record_not_sent(index, SUPPRESSED, int(time.time()))
                    think_s = pacing.think_time_s(rng, self.interval_min, self.interval_max)
                    await asyncio.sleep(max(think_s, SUPPRESSED_PAUSE_S))
                    continue
                user.in_flight = True
                try:
                    _, unavailable = await self._send(index, admission, state)
                finally:
                    user.in_flight = False
                if self._stopping or user.retiring:
                    return
            failures_in_a_row = failures_in_a_row + 1 if unavailable else 0
            pause_s = max(
                pacing.think_time_s(rng, self.interval_min, self.interval_max),
                pacing.backoff_s(
                    rng,
                    failures_in_a_row,
                    self.settings.backoff_base_s,
                    self.settings.backoff_max_s,
                ),
            )
            if pause_s > 0:
                await asyncio.sleep(pause_s)

    async def _arrivals(self) -> None:
        """The open model: requests are due on a schedule, whatever the target does."""
        rng = random.Random()
        while not self._stopping:
            schedule = self._schedule
            if schedule is None:
                await asyncio.sleep(self.settings.control_poll_interval_s)
                continue
            self._arrival += 1
            due = self._schedule_start + schedule.offset_s(self._arrival)
            delay_s = due - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
                if schedule is not self._schedule:
                    continue  # the rate changed while waiting: follow the new schedule
            elif self._arrival % 64 == 0:
                await asyncio.sleep(0)  # catching up: let answers in between sends
            index = self.selector.pick(rng)
            flow_index = index - len(self.endpoints)
            if flow_index >= 0:
                # A flow's iteration is one arrival, by a new user (no cookies yet); a missed
                # one counts against its first step.
                index = self.flows[flow_index].steps[0].endpoint
            if self._in_flight >= self.assignment.users:
                self.stats.record_not_sent(index, MISSED, int(time.time()))
                continue
            if flow_index >= 0:
                self._in_flight += 1
                self._track(self._arrival_flow(flow_index, due))
                continue
            admission = self.breakers[index].admit()
            if admission == DENIED:
                self.stats.record_not_sent(index, SUPPRESSED, int(time.time()))
                continue
            self._in_flight += 1
            self._track(self._arrival_request(index, admission, due))

    async def _arrival_request(self, index: int, admission: int, due: float) -> None:
        # Each arrival is a new user, when the request reads one (a template, a feed row);
        # fixed requests share one state and cost nothing per arrival.
        state = self._anonymous
        if self._state_per_arrival:
            state = self._new_user_state()
            if self.feed_cursor is not None:
                state.row = self.feed_cursor.row_for(state)
        try:
            await self._send(index, admission, state, intended_at=due)
        finally:
            self._in_flight -= 1

    async def _arrival_flow(self, flow_index: int, due: float) -> None:
        state = self._new_user_state()
        if self.feed_cursor is not None:
            state.row = self.feed_cursor.row_for(state)
        try:
            await self._run_flow(flow_index, state, None, intended_at=due)
        finally:
            self._in_flight -= 1

    async def _run_flow(
        self,
        flow_index: int,
        state: UserState,
        user: _VirtualUser | None,
        intended_at: float | None = None,
    ) -> bool:
        """One iteration of a flow: its steps in order, each with its think time after it.
        A step that fails (or whose breaker is open) ends the iteration, counted as failed;
        an iteration cut short by a stop is not counted (its requests are). Variables start
        empty each iteration; cookies stay the user's. Returns whether the last answer said
        the target is unavailable (for the user's back-off)."""
        flow = self.flows[flow_index]
        state.variables = None
        started = intended_at if intended_at is not None else time.perf_counter()
        failed = unavailable = False
        last = len(flow.steps) - 1
        for number, step in enumerate(flow.steps):
            if self._stopping:
                return unavailable
            index = step.endpoint
            admission = self.breakers[index].admit()
            if admission == DENIED:
                self.stats.record_not_sent(index, SUPPRESSED, int(time.time()))
                failed = True
                break
            if user is not None:
                user.in_flight = True
            try:
                failure, unavailable = await self._send(
                    index, admission, state, intended_at=intended_at if number == 0 else None
                )
            finally:
                if user is not None:
                    user.in_flight = False
            if self._stopping or (user is not None and user.retiring):
                return unavailable
            if failure is not None:
                failed = True
                break
            if step.think_time_s > 0 and number < last:
                await asyncio.sleep(step.think_time_s)
        duration_us = int((time.perf_counter() - started) * 1_000_000)
        self.stats.record_flow(flow_index, duration_us, failed)
        return unavailable

    async def _send(
        self,
        index: int,
        admission: int,
        state: UserState,
        intended_at: float | None = None,
    ) -> tuple[str | None, bool]:
        """Send one request as user ``state`` and record it. Returns its failure class (None:
        a success) and whether the target seemed unavailable.

        Latency runs from ``intended_at`` when given (open model), so time spent waiting for
        a late send counts: a slow target or an overloaded generator cannot hide delay.
        """
        endpoint = self.endpoints[index]
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds, cached per
        # loop iteration, which would blur every sub-millisecond latency.
        started = time.perf_counter()
        origin = intended_at if intended_at is not None else started
        failure: str | None = None
        unavailable = False
        status: int | None = None
        detail = ""
        traced: bytes | None = None
        request = self.requests[index]
        try:
            if isinstance(request, Exception):
                raise request  # this endpoint's request could not even be built
            raw: bytes | None = None
            if isinstance(request, TemplatedRequest):
                raw = traced = request.render(state)
                prepared = request.prepared
            else:
                prepared = request
                if self.traceparent:
                    raw = traced = request.traced()
            if state.cookies:
                raw = cookies.with_cookies(raw or prepared.raw, state.cookies)
            response = await self.http.send(prepared, endpoint.timeout_s, raw)
            status = response.status
            if response.set_cookies:
                state.cookies = cookies.store(state.cookies, response.set_cookies)
            rules = self.rules[index]
            if rules.expected[status]:
                if rules.checks:
                    elapsed_ms = (time.perf_counter() - origin) * 1000
                    failed = rules.first_failure(response, elapsed_ms)
                    if failed is not None:
                        failure = FailureClass.APPLICATION
                        self.stats.record_check_failure(index, failed[0])
                        detail = f"HTTP {status}: check {failed[0]!r} failed: {failed[1]}"
                extractions = self.extractions[index]
                if extractions and failure is None:
                    missing = self._extract(extractions, response, state)
                    if missing is not None:
                        failure = FailureClass.APPLICATION
                        name, why = missing
                        self.stats.record_check_failure(index, f"extract {name}")
                        detail = f"HTTP {status}: extract {name!r} failed: {why}"
            else:
                failure = unexpected_status_class(status)
                unavailable = status in UNAVAILABLE_STATUSES
                text = response.body_prefix[:ERROR_BODY_CHARS].decode(errors="replace").strip()
                detail = f"HTTP {status} {response.reason}: {text}".strip()
        except asyncio.CancelledError:
            # Cancelled at stop after the grace period: counted, never lost.
            self.stats.record(index, None, FailureClass.CANCELLED, int(time.time()))
            self.breakers[index].abandon(admission)
            raise
        except TimeoutError:
            failure, unavailable = FailureClass.TIMEOUT, True
            detail = f"No complete answer within the endpoint's {endpoint.timeout_s:g} s timeout."
        except OSError as exc:  # refused, reset, DNS, TLS, invalid HTTP (ConnectionError)
            failure, unavailable = FailureClass.NETWORK, True
            detail = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            failure = FailureClass.APPLICATION
            detail = f"{type(exc).__name__}: {exc}"
            self._report_engine_error(endpoint, exc)
        latency_us = int((time.perf_counter() - origin) * 1_000_000)
        self.stats.record(index, latency_us, failure, int(time.time()), unavailable)
        trace_id = ""
        if self.traceparent and traced is not None and (failure is not None or self.request_log):
            trace_id = request.trace_id(traced)  # type: ignore[union-attr]  # traced: built
        if failure is not None:
            self._sample_error(index, failure, status, detail, trace_id)
        if self.request_log:
            self._sample_request(index, status, failure, latency_us, trace_id)
        change = self.breakers[index].record(unavailable, admission)
        if change == CircuitBreaker.OPEN and admission != PROBE:
            self._event(EngineEventKind.BREAKER_OPENED,
                        f"{endpoint.name}: circuit breaker opened after "
                        f"{self.settings.breaker_failures} unavailable answers in a row; "
                        "sending probes only.")  # fmt: skip
        elif change == CircuitBreaker.CLOSED:
            self._event(
                EngineEventKind.BREAKER_CLOSED,
                f"{endpoint.name}: probe succeeded, circuit breaker closed.",
            )
        return failure, unavailable

    @staticmethod
    def _extract(
        extractions: tuple[Extraction, ...], response: Response, state: UserState
    ) -> tuple[str, str] | None:
        """Set the user's variables from the answer; the first one not found (its variable's
        name and why), or None."""
        document = None
        if any(extraction.source == "json_path" for extraction in extractions):
            document = parse_document(response)
        variables = state.variables
        if variables is None:
            variables = state.variables = {}
        for extraction in extractions:
            try:
                value = extraction.value(response, document)
            except TooSlow as exc:
                return extraction.name, str(exc)
            if value is None:
                return extraction.name, f"{extraction.expression} not found"
            variables[extraction.name] = value
        return None

    def _sample_error(
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
        self._event(
            ERROR_SAMPLE,
            mask_secrets(detail, secrets, cut_short=True)[: ERROR_BODY_CHARS + 100],
            endpoint=endpoint.name,
            failure_class=str(failure),
            status=status,
            trace_id=trace_id,
        )

    def _sample_request(
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

    def _report_engine_error(self, endpoint: EndpointPlan, exc: Exception) -> None:
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
        self._event(EngineEventKind.ENGINE_ERROR, f"{endpoint.name}: {type(exc).__name__}: {exc}")

    async def _stop_everything(self) -> None:
        """Stop sending now; let requests in flight finish within the grace period."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        for user in self._users:
            if not user.in_flight:
                user.task.cancel()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=self.settings.stop_grace_s)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- control -----------------------------------------------------------------------------

    async def _watch_control(self) -> StopReason:
        poll_s = self.settings.control_poll_interval_s
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
                self._last_redis_contact = time.monotonic()
            except (RedisError, OSError) as exc:
                silent_s = time.monotonic() - self._last_redis_contact
                if silent_s > self.settings.heartbeat_ttl_s:
                    logger.error("Session %s shard %s: Redis unreachable for %.0f s (%s); "
                                 "stopping.", self.session_id, self.shard_index, silent_s,
                                 exc)  # fmt: skip
                    return StopReason.REDIS_LOST
            else:
                reason = self._read_control(
                    state, factor, raw_weights, draining, emergency, raw_assignment
                )
                if reason is not None:
                    return reason
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(poll_s, remaining_s))

    def _read_control(
        self,
        state: bytes | None,
        factor: bytes | None,
        raw_weights: bytes | None,
        draining: bytes | None,
        emergency: bytes | None,
        raw_assignment: bytes | None,
    ) -> StopReason | None:
        if decode(state) != ControlState.RUNNING:
            return StopReason.STOPPED
        if emergency is not None and float(emergency) >= self.started_at:
            return StopReason.STOPPED
        if draining is not None:
            return StopReason.DRAINING
        assignment = Assignment.decode(raw_assignment)
        if assignment is None or assignment.generation != self.generation:
            return StopReason.SUPERSEDED
        if assignment.users == 0:
            return StopReason.RETIRED
        if raw_weights != self.raw_weights:
            self._use_weights(raw_weights)
        session_factor = float(factor) if factor is not None else 1.0
        if assignment != self.assignment or session_factor != self.session_factor:
            self.assignment, self.session_factor = assignment, session_factor
            self._apply_load()
        return None

    def _use_weights(self, raw_weights: bytes | None) -> None:
        """Pick endpoints and flows by the weights set while the session runs (the control
        hash's: one per plan endpoint, then one per flow: ``Plan.pick_weights``) or, until any
        are set, by the plan's. Users and arrivals read ``self.selector`` at each pick, so the
        new mix applies from the next request."""
        self.raw_weights = raw_weights
        weights = [endpoint.weight for endpoint in self.endpoints] + [
            flow.weight for flow in self.flows
        ]
        if raw_weights is not None:
            live = json.loads(raw_weights)
            # Weights set by a release without flows have one per endpoint only.
            weights = live + weights[len(live) :] if len(live) <= len(weights) else weights
        self.selector = EndpointSelector(weights)

    def _stop(self, reason: StopReason) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake.set()

    # --- statistics and events ---------------------------------------------------------------

    def _event(self, kind: str, message: str, **details: object) -> None:
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

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._flushes_end.wait(), timeout=self.settings.flush_interval_s
                )
            if self._flushes_end.is_set():
                return  # the final flush follows
            decision = self.guard.check()
            if decision.changed:
                shed = decision.factor < 1.0
                kind = EngineEventKind.USERS_SHED if shed else EngineEventKind.USERS_RESTORED
                verb = "shedding" if shed else "restoring"
                self._event(kind, f"{self.hostname}: {verb} users to {decision.factor:.0%} "
                                  f"of the shard's share ({decision.message}).")  # fmt: skip
                logger.warning("Session %s shard %s: resource guard %s users to %.0f%% (%s)",
                               self.session_id, self.shard_index, verb, decision.factor * 100,
                               decision.message)  # fmt: skip
                self._apply_load()
            try:
                await self._flush(None)
            except (RedisError, OSError) as exc:
                logger.warning("Session %s shard %s: flush failed, will retry: %s",
                               self.session_id, self.shard_index, exc)  # fmt: skip

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
            "users": self.active_users,
            "assigned_users": self.assignment.users,
            "model": "open" if self.open_model else "closed",
            "target_rps": round(self.assignment.rps * self._scale(), 3),
            "rate": round(requests / elapsed_s, 2),
            "load_factor": self.session_factor,
            "resource_factor": round(self.guard.factor, 3),
            "breakers_open": [
                endpoint.name
                for endpoint, breaker in zip(self.endpoints, self.breakers, strict=True)
                if breaker.state != CircuitBreaker.CLOSED
            ],
            "started_at": self.started_at,
            "at": time.time(),
        }

    async def _flush(self, new_state: ShardState | None, *, final: bool = False) -> int:
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
                heartbeat_ttl_s=self.settings.heartbeat_ttl_s,
                session_id=self.session_id,
            ),
        )
        self._unflushed = StatsDelta()
        del self._events[:events_sent]
        del self._request_samples[:samples_sent]
        self._samples_taken.clear()
        self._last_redis_contact = time.monotonic()
        if result == FLUSH_SUPERSEDED:
            self._stop(StopReason.SUPERSEDED)
        elif result != FLUSH_APPLIED:
            self._stop(StopReason.SESSION_GONE)
        return result

    async def _final_flush(self, final_state: ShardState | None) -> None:
        """The last counts and the finished state, retried until Redis answers or gives up."""
        deadline = time.monotonic() + max(self.settings.heartbeat_ttl_s, FINAL_FLUSH_RETRY_MIN_S)
        while True:
            try:
                await self._flush(final_state, final=True)
                return
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    logger.error("Session %s shard %s: final statistics lost (%s requests): %s",
                                 self.session_id, self.shard_index,
                                 self._unflushed.requests, exc)  # fmt: skip
                    return
                await asyncio.sleep(0.5)
