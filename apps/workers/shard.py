"""A shard: a slice of a session's virtual users on one asyncio loop, in one worker process.

This is where requests are sent (``_send``). In the closed model each virtual user picks an
endpoint by weight, sends it with the endpoint's timeout, records the outcome in memory and
thinks for a uniform random time; in the open model an arrival schedule hands requests due at
fixed times to free users (see ``pacing``). The hot loop never touches the Django database.
Beside the users, on the same loop, the shard's ``ShardReporter`` (``reporting``) flushes
statistics and events to Redis about once a second with the shard's heartbeat, and its
``ControlChannel`` (``control_channel``) watches the session's control state, so a stop, an
emergency stop or a new user count reaches the shard within CONTROL_POLL_INTERVAL_S.

When the session's plan asks for a request log (``enable_logging``), the first few requests
per endpoint of every flush are sampled, whatever their outcome, with the error samples'
counter check: the hot loop pays one dictionary lookup per request for it.

Failures that say the target is unavailable open the endpoint's circuit breaker (only probes
are sent until it recovers) and make the user back off with jitter; the session's load factor
(set by the monitor when the error rate stays high) and the resource guard scale the load.

Stopping is cooperative and loses nothing: users that are thinking are cancelled at once,
requests already in flight are awaited for up to STOP_GRACE_S (not at all after an emergency
stop) and then cut, each counted as a request "cut by the stop" (sent, but no failure of the
target's), and a final flush marks the shard finished in the same atomic step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from . import cookies, pacing
from .breaker import DENIED, PROBE, CircuitBreaker
from .checks import DEFAULT_CHECK_BODY_LIMIT, unexpected_answer
from .control import REDIS_SOCKET_TIMEOUT_S, WEIGHTS_FIELD, Assignment, SessionKeys, decode
from .control_channel import ControlChannel
from .extraction import extract_variables
from .feed_cursor import FeedCursor
from .http import HttpClient, Response, never_reached_target
from .plan import EndpointPlan, FlowPlan, Plan, PlanNotTrusted, read_trusted_plan
from .preparation import EndpointRequest, prepare_endpoints
from .reporting import ERROR_BODY_CHARS, ShardReporter
from .resources import ResourceGuard, raise_open_files_limit
from .selection import EndpointSelector
from .stats import MISSED, SUPPRESSED, ShardStats
from .templated_requests import TemplatedRequest
from .userstate import UserState
from .vocabulary import (
    SHARD_STATE_AFTER_STOP,
    ControlState,
    EngineEventKind,
    FailureClass,
    ShardState,
    StopReason,
)

logger = logging.getLogger(__name__)

SUPPRESSED_PAUSE_S = 0.05  # a user whose endpoint's breaker is open waits at least this


@dataclass(frozen=True)
class ShardSettings:
    """The engine's tunables, passed in so that tests can drive a shard directly."""

    flush_interval_s: float = 1.0
    control_poll_interval_s: float = 0.1
    stop_grace_s: float = 0.5
    heartbeat_ttl_s: float = 10.0
    breaker_failures: int = 10
    breaker_cooldown_s: float = 2.0
    breaker_max_cooldown_s: float = 30.0
    backoff_base_s: float = 0.1
    backoff_max_s: float = 10.0
    max_rss_mb: float = 0.0
    max_cpu_percent: float = 0.0
    check_body_limit: int = DEFAULT_CHECK_BODY_LIMIT
    # What a shard trusts the plan in Redis by (see ``plan.read_trusted_plan``): the key its
    # signature is made with and where load may go. The defaults trust nothing.
    plan_signing_key: bytes = b""
    allowed_target_hosts: tuple[str, ...] = ()


class _VirtualUser:
    __slots__ = ("in_flight", "retiring", "started", "state", "task")
    task: asyncio.Task[None]  # set as soon as the user is made (the task needs the user)

    def __init__(self, state: UserState) -> None:
        self.in_flight = False
        self.retiring = False
        self.started = False
        self.state = state  # what the templates and flows read and write


class ShardRunner:
    """Runs generation ``generation`` of shard ``shard_index`` until it has to stop: sends the
    load itself, and composes a ``ControlChannel`` (when to stop, what load is wanted) and a
    ``ShardReporter`` (what it recorded, flushed to Redis with its heartbeat)."""

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
        self._users: list[_VirtualUser] = []  # the active ones; retiring users leave it
        self._tasks: set[asyncio.Task] = set()  # every user and open-model request
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
        try:
            plan = read_trusted_plan(
                raw_plan, self.settings.plan_signing_key, self.settings.allowed_target_hosts
            )
        except PlanNotTrusted as refusal:
            return await self._refuse_plan(assignment, refusal)
        self._setup(plan, assignment, factor, raw_weights)
        self._number_users(assignments)
        self._connect_control_and_reporting()
        if decode(state) != ControlState.RUNNING or assignment.users == 0:
            # Stopped (or retired) before this shard got a worker: send nothing.
            reason = StopReason.STOPPED if assignment.users else StopReason.RETIRED
            await self.reporter.final_flush(SHARD_STATE_AFTER_STOP[reason])
            return reason

        await self.control.claim_load_start(self.duration_s)
        await self.reporter.flush(ShardState.RUNNING)
        logger.info("Session %s shard %s/%s: %s users (%s model) on %s.", self.session_id,
                    self.shard_index, self.generation, assignment.users,
                    "open" if self.open_model else "closed", self.hostname)  # fmt: skip
        self.http = HttpClient()
        try:
            self._apply_load(initial=True)
            flusher = asyncio.create_task(self.reporter.flush_periodically(self._check_resources))
            reason = await self.control.watch(self._follow_control)
            await self._stop_everything(
                0.0 if reason == StopReason.EMERGENCY else self.settings.stop_grace_s
            )
            self.reporter.end_periodic_flushes()  # after the flush in progress, never cut
            await asyncio.gather(flusher, return_exceptions=True)
        finally:
            self.http.close()

        if reason == StopReason.SUPERSEDED:
            self.reporter.event(EngineEventKind.SHARD_SUPERSEDED,
                                f"Shard {self.shard_index} generation {self.generation} on "
                                f"{self.hostname} was superseded and stopped.")  # fmt: skip
        await self.reporter.final_flush(SHARD_STATE_AFTER_STOP[reason])
        logger.info("Session %s shard %s/%s: finished (%s).",
                    self.session_id, self.shard_index, self.generation, reason)  # fmt: skip
        return reason

    def _setup(
        self, plan: Plan, assignment: Assignment, factor: bytes | None, raw_weights: bytes | None
    ) -> None:
        self.endpoints = plan.endpoints
        self.flows: tuple[FlowPlan, ...] = plan.flows
        prepared = prepare_endpoints(
            plan, session_id=self.session_id, check_body_limit=self.settings.check_body_limit
        )
        self.requests = prepared.requests
        self.rules = prepared.rules
        self.extractions = prepared.extractions
        self.traceparent = plan.traceparent
        self.feed = plan.feed
        self.feed_cursor: FeedCursor | None = None  # set by _number_users (needs the shards)
        self.first_user_id = 1
        self._next_user_id = 1
        self.plan_weights = plan.pick_weights()
        self._use_weights(raw_weights)
        self.interval_min = plan.request_interval_min
        self.interval_max = plan.request_interval_max
        self.duration_s = plan.duration_s
        self.ramp_up_s = plan.ramp_up_s
        self.open_model = plan.open_model
        self.request_log = plan.request_log
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

    async def _refuse_plan(self, assignment: Assignment, refusal: PlanNotTrusted) -> StopReason:
        """Send nothing, and say why in the session's events: the shard finishes as one with
        no load, so the session ends rather than waits for it."""
        logger.error("Session %s shard %s/%s: %s", self.session_id, self.shard_index,
                     self.generation, refusal)  # fmt: skip
        # Just what the reporter and the heartbeat need: no endpoint, no user.
        self.endpoints, self.flows, self.breakers = (), (), []
        self.open_model = False
        self.assignment = assignment
        self.stats = ShardStats(0, 0)
        self.guard = ResourceGuard(0.0, 0.0)
        self.started_at = time.time()
        self._connect_control_and_reporting()
        self.reporter.event(EngineEventKind.ENGINE_ERROR, str(refusal))
        await self.reporter.final_flush(SHARD_STATE_AFTER_STOP[StopReason.PLAN_REFUSED])
        return StopReason.PLAN_REFUSED

    def _connect_control_and_reporting(self) -> None:
        """The shard's two companions on its loop, sharing its Redis connection: the control
        channel it watches, and the reporter that flushes what it records."""
        self.control = ControlChannel(
            redis=self.redis,
            keys=self.keys,
            shard_index=self.shard_index,
            generation=self.generation,
            hostname=self.hostname,
            started_at=self.started_at,
            poll_interval_s=self.settings.control_poll_interval_s,
            redis_lost_after_s=self.settings.heartbeat_ttl_s,
        )
        self.reporter = ShardReporter(
            control=self.control,
            endpoints=self.endpoints,
            stats=self.stats,
            status=self._status,
            flush_interval_s=self.settings.flush_interval_s,
            heartbeat_ttl_s=self.settings.heartbeat_ttl_s,
        )

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

    def _follow_control(
        self, assignment: Assignment, session_factor: float, raw_weights: bytes | None
    ) -> None:
        """What the control channel reads on each poll: a new mix of endpoints, a new share
        of users or rate, or a new load factor takes effect now."""
        if raw_weights != self.raw_weights:
            self._use_weights(raw_weights)
        if assignment != self.assignment or session_factor != self.session_factor:
            self.assignment, self.session_factor = assignment, session_factor
            self._apply_load()

    def _use_weights(self, raw_weights: bytes | None) -> None:
        """Pick endpoints and flows by the weights set while the session runs (the control
        hash's: one per plan endpoint, then one per flow: ``Plan.pick_weights``) or, until any
        are set, by the plan's. Users and arrivals read ``self.selector`` at each pick, so the
        new mix applies from the next request."""
        self.raw_weights = raw_weights
        weights = self.plan_weights
        if raw_weights is not None:
            live = json.loads(raw_weights)
            # Weights set by a release without flows have one per endpoint only.
            weights = live + weights[len(live) :] if len(live) <= len(weights) else weights
        self.selector = EndpointSelector(weights)

    def _check_resources(self) -> None:
        """Before each periodic flush: shed users while the worker is short of memory or
        CPU (the resource guard), and restore them when it recovers."""
        decision = self.guard.check()
        if not decision.changed:
            return
        shed = decision.factor < 1.0
        kind = EngineEventKind.USERS_SHED if shed else EngineEventKind.USERS_RESTORED
        verb = "shedding" if shed else "restoring"
        self.reporter.event(kind, f"{self.hostname}: {verb} users to {decision.factor:.0%} "
                                  f"of the shard's share ({decision.message}).")  # fmt: skip
        logger.warning("Session %s shard %s: resource guard %s users to %.0f%% (%s)",
                       self.session_id, self.shard_index, verb, decision.factor * 100,
                       decision.message)  # fmt: skip
        self._apply_load()

    def _status(self) -> dict[str, object]:
        """The shard's part of its heartbeat: how much load it sends, and what holds it back."""
        return {
            "users": self.active_users,
            "assigned_users": self.assignment.users,
            "model": "open" if self.open_model else "closed",
            "target_rps": round(self.assignment.rps * self._scale(), 3),
            "load_factor": self.session_factor,
            "resource_factor": round(self.guard.factor, 3),
            "breakers_open": [
                endpoint.name
                for endpoint, breaker in zip(self.endpoints, self.breakers, strict=True)
                if breaker.state != CircuitBreaker.CLOSED
            ],
        }

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

        This runs once per request: what only failures, checks, the request log or a breaker
        that changes state need is in methods called for those alone, so a plain success
        costs no call, allocation or lookup beyond what it uses.
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
        unreached = False
        traced: bytes | None = None  # the bytes sent, when built per request (for a trace id)
        request = self.requests[index]
        try:
            if isinstance(request, Exception):
                raise request  # this endpoint's request could not even be built
            raw: bytes | None = None  # None: the prepared bytes as they are
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
            if not rules.expected[status]:
                failure, unavailable, detail = unexpected_answer(response, ERROR_BODY_CHARS)
            elif rules.checks or self.extractions[index]:
                failure, detail = self._judge_expected_answer(index, response, state, origin)
        except asyncio.CancelledError as exc:
            # Cut by a stop: counted (it was sent, unless cut while connecting), never lost,
            # and never blamed on the target.
            self.stats.record_cut(index, int(time.time()), never_reached_target(exc))
            self.breakers[index].abandon(admission)
            raise
        except Exception as exc:
            failure, unavailable, detail = self._judge_failed_send(endpoint, exc)
            unreached = never_reached_target(exc)
        latency_us = int((time.perf_counter() - origin) * 1_000_000)
        self.stats.record(index, latency_us, failure, int(time.time()), unavailable, unreached)
        if failure is not None or self.request_log:
            self._sample(index, request, traced, status, failure, detail, latency_us)
        change = self.breakers[index].record(unavailable, admission)
        if change is not None:
            self._report_breaker_change(endpoint, change, admission)
        return failure, unavailable

    # What ``_send`` calls only when it needs them.

    def _judge_expected_answer(
        self, index: int, response: Response, state: UserState, origin: float
    ) -> tuple[str | None, str]:
        """An expected status, on an endpoint with checks or extractions: the first check
        that fails, or else the first variable not found, is an ``application`` failure
        (with its detail); extractions run only when every check passed."""
        status = response.status
        rules = self.rules[index]
        if rules.checks:
            elapsed_ms = (time.perf_counter() - origin) * 1000
            failed = rules.first_failure(response, elapsed_ms)
            if failed is not None:
                self.stats.record_check_failure(index, failed[0])
                return (
                    FailureClass.APPLICATION,
                    f"HTTP {status}: check {failed[0]!r} failed: {failed[1]}",
                )
        extractions = self.extractions[index]
        if extractions:
            missing = extract_variables(extractions, response, state)
            if missing is not None:
                name, why = missing
                self.stats.record_check_failure(index, f"extract {name}")
                return FailureClass.APPLICATION, f"HTTP {status}: extract {name!r} failed: {why}"
        return None, ""

    def _judge_failed_send(self, endpoint: EndpointPlan, exc: Exception) -> tuple[str, bool, str]:
        """No answer: a timeout and a network error say the target is unavailable; anything
        else is a fault of ours (or of the endpoint's request), reported once a minute."""
        if isinstance(exc, TimeoutError):  # before OSError, of which it is a kind
            detail = f"No complete answer within the endpoint's {endpoint.timeout_s:g} s timeout."
            return FailureClass.TIMEOUT, True, detail
        if isinstance(exc, OSError):  # refused, reset, DNS, TLS, invalid HTTP (ConnectionError)
            return FailureClass.NETWORK, True, f"{type(exc).__name__}: {exc}"
        self.reporter.report_engine_error(endpoint, exc)
        return FailureClass.APPLICATION, False, f"{type(exc).__name__}: {exc}"

    def _sample(
        self,
        index: int,
        request: EndpointRequest,
        traced: bytes | None,
        status: int | None,
        failure: str | None,
        detail: str,
        latency_us: int,
    ) -> None:
        """A failure for the error log, a request for the request log (both sampled), with
        the trace id of what was sent when the plan adds a traceparent."""
        trace_id = ""
        if self.traceparent and traced is not None:
            trace_id = request.trace_id(traced)  # type: ignore[union-attr]  # traced: built
        if failure is not None:
            self.reporter.sample_error(index, failure, status, detail, trace_id)
        if self.request_log:
            self.reporter.sample_request(index, status, failure, latency_us, trace_id)

    def _report_breaker_change(self, endpoint: EndpointPlan, change: str, admission: int) -> None:
        if change == CircuitBreaker.OPEN and admission != PROBE:
            self.reporter.event(EngineEventKind.BREAKER_OPENED,
                                f"{endpoint.name}: circuit breaker opened after "
                                f"{self.settings.breaker_failures} unavailable answers in a "
                                "row; sending probes only.")  # fmt: skip
        elif change == CircuitBreaker.CLOSED:
            self.reporter.event(
                EngineEventKind.BREAKER_CLOSED,
                f"{endpoint.name}: probe succeeded, circuit breaker closed.",
            )

    async def _stop_everything(self, grace_s: float) -> None:
        """Stop sending now; let requests in flight finish within ``grace_s`` (0 after an
        emergency stop: whoever pressed it wants the target left alone now, and a cut
        request is not counted against the target)."""
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
        if grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
