"""The Redis side of a session: key names, control states, and the atomic scripts.

Redis carries what is fast and volatile (control flags, heartbeats, live counters); the
database row stays the truth about a session's lifecycle. Everything here may vanish: a shard
that finds no control state stops sending, a flush into a session Redis no longer knows is
refused, and the monitor copies totals into the database every second.

Keys of session 42 (all under ``lt:s:42:``):
- ``plan``      JSON of the session's ``Plan`` (see ``plan``), frozen at start, after its
                HMAC signature (``plan.signed_plan_text``)
- ``control``   hash: ``state`` (a ``ControlState``: "running" while load is wanted;
                anything else or nothing means stop), ``factor`` (load reduction, 1.0 =
                full load), ``load_started_at`` (epoch seconds, set once by the first
                shard to start: the duration counts from then) and ``weights`` (set when
                the endpoint weights change while it runs, see ``set_endpoint_weights``)
- ``assign``    hash shard index -> "generation:users:rps" (users 0: the shard is retired)
- ``shards``    hash shard index -> its ``ShardState`` (see ``vocabulary``)
- ``queued_at`` hash shard index -> when its current generation was queued (epoch seconds)
- ``hb:{n}``    shard n's heartbeat (JSON, expires after HEARTBEAT_TTL_S)
- ``stats``     cumulative counters, ``series`` per-second counters (see ``stats``)
- ``events``    list of engine events (JSON) waiting for the monitor
- ``requests``  list of sampled requests (JSON) waiting for the monitor (the request log)
- ``alive``     when the monitor last saw a live shard (epoch seconds)
- ``ticked``    when the monitor last looked at the session (epoch seconds)
- ``monitor``   lock held by the monitor tick in progress (one at a time per session)
- ``snapshot``  the newest live snapshot (JSON), ``snapshot_seq`` its id counter, both
                kept SNAPSHOT_TTL_S after the session ends (a late viewer gets the end);
                channel ``live`` carries each new one to the open streams
Global: ``lt:heartbeats`` (every live shard's heartbeat, for GET /api/workers/),
``lt:worker:{hostname}`` (worker presence), ``lt:worker:{hostname}:draining``,
``lt:emergency`` (time of the last emergency stop), and ``lt:dispatched`` (ids of the
sessions the control plane dispatched and has not forgotten yet: the orphan sweep compares
them with the database without scanning keys).

A shard's *generation* grows each time it is re-dispatched; a shard whose generation is no
longer the assigned one has been superseded and stops, so a worker that comes back from a
pause cannot double the load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import overload

import redis
from django.conf import settings
from redis.typing import EncodableT, FieldT

from .plan import Plan, plan_signing_key, signed_plan_text
from .vocabulary import ControlState, ShardState, shard_states_leading_to

KEY_PREFIX = "lt"
# Counters of a session nobody finalized (everything was shut down) expire eventually.
ORPHAN_TTL_S = 7 * 24 * 3600
EVENTS_BUFFERED = 1000  # engine events, and sampled requests, waiting for the monitor
# Every call to Redis, from the control plane and from shards, gives up after this: a shard
# counts a stall as lost contact and the API answers 503 rather than hang.
REDIS_SOCKET_TIMEOUT_S = 5
HEARTBEATS_KEY = f"{KEY_PREFIX}:heartbeats"
EMERGENCY_KEY = f"{KEY_PREFIX}:emergency"
DISPATCHED_SESSIONS_KEY = f"{KEY_PREFIX}:dispatched"


# The control hash's field for when the session's load began (see ``claim_load_start``).
LOAD_STARTED_FIELD = "load_started_at"
# The control hash's field for endpoint weights changed while the session runs: a JSON list,
# one weight per endpoint of the plan, by position. Absent, the plan's own weights hold.
WEIGHTS_FIELD = "weights"
# The control hash's field for when the session's stop was asked (epoch seconds): how long the
# monitor may wait for its shards to report themselves finished (see ``request_stop``).
STOP_REQUESTED_FIELD = "stop_requested_at"


@dataclass(frozen=True)
class Assignment:
    """What one shard should be doing now."""

    generation: int
    users: int
    rps: float  # open model: this shard's share of the session's rate; 0 in the closed model

    def encode(self) -> str:
        return f"{self.generation}:{self.users}:{self.rps!r}"

    @overload
    @classmethod
    def decode(cls, raw: bytes | str) -> Assignment: ...
    @overload
    @classmethod
    def decode(cls, raw: None) -> None: ...
    @classmethod
    def decode(cls, raw: bytes | str | None) -> Assignment | None:
        if raw is None:
            return None
        generation, users, rps = decode(raw).split(":")
        return cls(int(generation), int(users), float(rps))


@dataclass(frozen=True)
class SessionKeys:
    session_id: int

    @property
    def _base(self) -> str:
        return f"{KEY_PREFIX}:s:{self.session_id}"

    @property
    def plan(self) -> str:
        return f"{self._base}:plan"

    @property
    def control(self) -> str:
        return f"{self._base}:control"

    @property
    def assign(self) -> str:
        return f"{self._base}:assign"

    @property
    def shards(self) -> str:
        return f"{self._base}:shards"

    def heartbeat(self, shard_index: int | str) -> str:
        return f"{self._base}:hb:{shard_index}"

    @property
    def queued_at(self) -> str:
        return f"{self._base}:queued_at"

    @property
    def stats(self) -> str:
        return f"{self._base}:stats"

    @property
    def series(self) -> str:
        return f"{self._base}:series"

    @property
    def events(self) -> str:
        return f"{self._base}:events"

    @property
    def requests(self) -> str:
        return f"{self._base}:requests"

    @property
    def alive(self) -> str:
        return f"{self._base}:alive"

    @property
    def ticked(self) -> str:
        return f"{self._base}:ticked"

    @property
    def monitor(self) -> str:
        return f"{self._base}:monitor"

    @property
    def latency_window(self) -> str:
        """The monitor's recent ticks' latency histograms (a list, newest last), from which
        the live percentiles are computed over a sliding window."""
        return f"{self._base}:latency_window"

    @property
    def snapshot(self) -> str:
        """The newest live snapshot the monitor built (JSON: id, event, data)."""
        return f"{self._base}:snapshot"

    @property
    def snapshot_seq(self) -> str:
        """The snapshots' id counter (an SSE ``id:`` per tick)."""
        return f"{self._base}:snapshot_seq"

    @property
    def snapshot_channel(self) -> str:
        """Pub/sub channel each new snapshot is published on, for the open streams."""
        return f"{self._base}:live"

    def heartbeat_field(self, shard_index: int | str) -> str:
        """The shard's field in the global ``lt:heartbeats`` hash."""
        return f"{self.session_id}:{shard_index}"

    def all(self, shard_indices: Iterable[int | str]) -> list[str]:
        return [
            self.plan,
            self.control,
            self.assign,
            self.shards,
            self.queued_at,
            self.stats,
            self.series,
            self.events,
            self.requests,
            self.alive,
            self.ticked,
            self.monitor,
            self.latency_window,
            *(self.heartbeat(index) for index in shard_indices),
        ]


def worker_draining_key(hostname: str) -> str:
    """Set when a worker begins a warm shutdown, so its shards stop and flush at once."""
    return f"{KEY_PREFIX}:worker:{hostname}:draining"


def worker_presence_key(hostname: str) -> str:
    return f"{KEY_PREFIX}:worker:{hostname}"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_SOCKET_TIMEOUT_S, socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S
    )


def get_redis() -> redis.Redis:
    """A process-wide client for REDIS_URL (a connection pool, safe across threads)."""
    return _client(settings.REDIS_URL)


@overload
def decode(value: bytes | str) -> str: ...
@overload
def decode(value: None) -> None: ...
def decode(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value


# One round trip, atomic: apply a shard's delta and queue its events; then, unless it has
# been superseded, set its state and refresh its heartbeat. The monitor therefore never sees
# a shard marked finished without its last counts. A session Redis no longer knows (no plan)
# is refused whole, so a late shard cannot recreate its keys.
# KEYS: stats, series, shards, heartbeat, assign, plan, events, global heartbeats, requests.
# ARGV: shard index, generation, new state or "", heartbeat JSON or "" (deletes it),
#       heartbeat TTL ms, orphan TTL s, items kept per list, heartbeat field, the states the
#       new state may follow (space-separated, from SHARD_TRANSITIONS: any other is left as
#       it is), then six sections "count, items...": events and sampled requests (one item
#       each; two lists, so that a busy request log never pushes the rare events out),
#       increments, maxima, minima, series increments (two items each: name, value).
# Returns 0: session unknown (nothing applied), 1: applied, 2: applied but superseded.
FLUSH_SCRIPT = """
if redis.call('EXISTS', KEYS[6]) == 0 then return 0 end
local stats, series = KEYS[1], KEYS[2]
local ttl = ARGV[6]
local i = 10
local n
for _, list in ipairs({KEYS[7], KEYS[9]}) do
  n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do redis.call('LPUSH', list, ARGV[i]); i = i + 1 end
  if n > 0 then
    redis.call('LTRIM', list, 0, tonumber(ARGV[7]) - 1)
    redis.call('EXPIRE', list, ttl)
  end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HINCRBY', stats, ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local current = redis.call('HGET', stats, ARGV[i])
  if (not current) or tonumber(ARGV[i + 1]) > tonumber(current) then
    redis.call('HSET', stats, ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local current = redis.call('HGET', stats, ARGV[i])
  if (not current) or tonumber(ARGV[i + 1]) < tonumber(current) then
    redis.call('HSET', stats, ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HINCRBY', series, ARGV[i], ARGV[i + 1]); i = i + 2 end
if redis.call('EXISTS', stats) == 1 then redis.call('EXPIRE', stats, ttl) end
if redis.call('EXISTS', series) == 1 then redis.call('EXPIRE', series, ttl) end
local assigned = redis.call('HGET', KEYS[5], ARGV[1])
if (not assigned) or string.match(assigned, '^(%d+):') ~= ARGV[2] then return 2 end
if ARGV[3] ~= '' then
  local current = redis.call('HGET', KEYS[3], ARGV[1])
  if current and string.find(' ' .. ARGV[9] .. ' ', ' ' .. current .. ' ', 1, true) then
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  end
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5])
  redis.call('HSET', KEYS[8], ARGV[8], ARGV[4])
else
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[8], ARGV[8])
end
return 1
"""

FLUSH_SESSION_UNKNOWN, FLUSH_APPLIED, FLUSH_SUPERSEDED = 0, 1, 2


def flush_script_args(
    *,
    shard_index: int,
    generation: int,
    new_state: ShardState | None,
    heartbeat: dict | None,
    events: list[dict],
    increments: dict[str, int],
    maxima: dict[str, int],
    minima: dict[str, int],
    series: dict[str, int],
    heartbeat_ttl_s: float,
    session_id: int,
    request_samples: Sequence[dict] = (),
) -> list:
    args: list = [
        shard_index,
        generation,
        new_state or "",
        json.dumps(heartbeat) if heartbeat is not None else "",
        int(heartbeat_ttl_s * 1000),
        ORPHAN_TTL_S,
        EVENTS_BUFFERED,
        SessionKeys(session_id).heartbeat_field(shard_index),
        " ".join(sorted(shard_states_leading_to(new_state))) if new_state else "",
    ]
    for items in (events, request_samples):
        args.append(len(items))
        args.extend(json.dumps(item) for item in items)
    for section in (increments, maxima, minima, series):
        args.append(len(section))
        for name, value in section.items():
            args.extend((name, value))
    return args


def flush_script_keys(keys: SessionKeys, shard_index: int) -> list[str]:
    return [
        keys.stats,
        keys.series,
        keys.shards,
        keys.heartbeat(shard_index),
        keys.assign,
        keys.plan,
        keys.events,
        HEARTBEATS_KEY,
        keys.requests,
    ]


# The first shard of a session to begin sending records when (HSETNX: once); every shard
# reads the time back. A session Redis no longer knows is left alone (returns nil), so a late
# shard cannot recreate its control hash.
# KEYS: control. ARGV: LOAD_STARTED_FIELD, now (epoch seconds).
CLAIM_LOAD_START_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# Read a hash or list and delete it in one step, so two monitors never take the same items.
DRAIN_HASH_SCRIPT = """
local values = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return values
"""
DRAIN_LIST_SCRIPT = """
local values = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return values
"""

# Release the monitor's per-session lock only if it is still ours (a tick that overran its
# lock must not release the next tick's). ARGV: the lock's token.
RELEASE_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Give a shard new users/rps, keeping its generation. A shard index that is new, or whose
# last run finished (a state from which SHARD_TRANSITIONS leads to "queued"), but now has
# users gets the next generation and state "queued"; those indices are returned for the
# caller to dispatch.
# KEYS: assign, shards, queued_at. ARGV: the queued state, the states that may be queued
# again (space-separated), the keys' TTL s, then pairs of shard index, "users:rps".
REASSIGN_SCRIPT = """
local to_dispatch = {}
local now = redis.call('TIME')[1]
local queued, requeueable = ARGV[1], ' ' .. ARGV[2] .. ' '
for i = 4, #ARGV, 2 do
  local index, share = ARGV[i], ARGV[i + 1]
  local users = tonumber(string.match(share, '^(%d+):'))
  local current = redis.call('HGET', KEYS[1], index)
  local state = redis.call('HGET', KEYS[2], index)
  local generation = 0
  if current then generation = tonumber(string.match(current, '^(%d+):')) end
  local may_queue = (not state) or string.find(requeueable, ' ' .. state .. ' ', 1, true)
  if users > 0 and may_queue then
    generation = generation + 1
    redis.call('HSET', KEYS[2], index, queued)
    redis.call('HSET', KEYS[3], index, now)
    table.insert(to_dispatch, index .. ':' .. generation)
  end
  redis.call('HSET', KEYS[1], index, generation .. ':' .. share)
end
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ARGV[3]) end
return to_dispatch
"""

# Shards in the state ARGV[2] whose heartbeat (key ARGV[1] .. index) has expired get the state
# ARGV[3]: their worker died. Atomic, so a shard that finishes between the check and the mark
# keeps its state. Returns the states of all shards as a flat list: index, state, index...
MARK_SILENT_SCRIPT = """
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if flat[i + 1] == ARGV[2] and redis.call('EXISTS', ARGV[1] .. flat[i]) == 0 then
    redis.call('HSET', KEYS[1], flat[i], ARGV[3])
    flat[i + 1] = ARGV[3]
  end
end
return flat
"""


def _stored_plan(plan: Plan) -> bytes:
    """The plan signed, so that a shard can tell it is the one the control plane wrote."""
    return signed_plan_text(plan, plan_signing_key(settings.SECRET_KEY))


def publish_session(client: redis.Redis, session_id: int, plan: Plan) -> None:
    """Everything shards need before they are queued: the plan and the run state.

    A finished session's last snapshot outlives its other keys for an hour; one left by an
    earlier session of the same id (the database reset, Redis kept) would reach this
    session's page as its own, ended, before the first tick: it goes too."""
    keys = SessionKeys(session_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(*keys.all([]), keys.snapshot, keys.snapshot_seq)
        pipe.set(keys.plan, _stored_plan(plan), ex=ORPHAN_TTL_S)
        pipe.hset(keys.control, mapping={"state": ControlState.RUNNING, "factor": "1"})
        pipe.expire(keys.control, ORPHAN_TTL_S)
        pipe.set(keys.alive, time.time(), ex=ORPHAN_TTL_S)
        pipe.execute()


def republish_session(
    client: redis.Redis,
    session_id: int,
    plan: Plan,
    *,
    shares: dict[int, tuple[int, float]],
    generation_floor: int,
    load_started_at: float | None,
    weights: Sequence[float] | None,
    stats: Mapping[str, int],
) -> list[tuple[int, int]]:
    """Publish again a running session whose state Redis lost (a restart without persistence,
    a failover, a flush), from what the control plane kept: its plan, when its load started,
    its live endpoint weights and its counters so far.

    Unlike ``publish_session`` it leaves the monitor's lock alone (the tick doing this holds
    it). Each shard of ``shares`` is first assigned ``generation_floor`` with no users, so
    that ``reassign`` queues it as the next generation: the floor must be above any generation
    a shard of the lost state had, so that such a shard, should it reach this Redis later
    (it was partitioned), finds itself superseded and stops. The live snapshots' ids continue
    from the same floor, so a dashboard that reconnects with its last event id is not left
    waiting for the new numbering to catch up.

    One transaction, the shards' ``reassign`` (``shares``: index -> users, rps) included: a
    monitor never sees the plan back without the shards' states. Returns (index, generation)
    of the shards to dispatch.
    """
    keys = SessionKeys(session_id)
    control: dict[FieldT, EncodableT] = {"state": ControlState.RUNNING, "factor": "1"}
    if load_started_at is not None:
        control[LOAD_STARTED_FIELD] = repr(load_started_at)
    if weights is not None:
        control[WEIGHTS_FIELD] = json.dumps([float(weight) for weight in weights])
    stale = [key for key in keys.all(shares) if key != keys.monitor]
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(*stale)
        pipe.set(keys.plan, _stored_plan(plan), ex=ORPHAN_TTL_S)
        pipe.hset(keys.control, mapping=control)
        pipe.expire(keys.control, ORPHAN_TTL_S)
        if stats:
            counters: dict[FieldT, EncodableT] = {field: value for field, value in stats.items()}
            pipe.hset(keys.stats, mapping=counters)
            pipe.expire(keys.stats, ORPHAN_TTL_S)
        pipe.hset(
            keys.assign, mapping={str(index): f"{generation_floor}:0:0.0" for index in shares}
        )
        pipe.set(keys.snapshot_seq, generation_floor, ex=ORPHAN_TTL_S)
        pipe.set(keys.alive, time.time(), ex=ORPHAN_TTL_S)
        pipe.eval(REASSIGN_SCRIPT, 3, *_reassign_keys_and_args(session_id, shares))
        *_, dispatched = pipe.execute()
    return _dispatched(dispatched)


def mark_dispatched(client: redis.Redis, session_id: int) -> None:
    """Record that the control plane sent load out for this session (until it is forgotten).

    Separate from ``publish_session``: what runs a shard without a database row (the engine's
    own tests) is not the control plane's business and stays out of the orphan sweep.
    """
    client.sadd(DISPATCHED_SESSIONS_KEY, session_id)


def dispatched_session_ids(client: redis.Redis) -> set[int]:
    return {int(decode(member)) for member in client.smembers(DISPATCHED_SESSIONS_KEY)}


def reassign(
    client: redis.Redis, session_id: int, shares: dict[int, tuple[int, float]]
) -> list[tuple[int, int]]:
    """Set each shard's (users, rps); returns (index, generation) of shards to dispatch."""
    raw = client.eval(REASSIGN_SCRIPT, 3, *_reassign_keys_and_args(session_id, shares))
    return _dispatched(raw)


def _reassign_keys_and_args(session_id: int, shares: dict[int, tuple[int, float]]) -> list:
    keys = SessionKeys(session_id)
    requeueable = " ".join(sorted(shard_states_leading_to(ShardState.QUEUED)))
    args: list = [keys.assign, keys.shards, keys.queued_at, ShardState.QUEUED, requeueable]
    args.append(ORPHAN_TTL_S)
    for index, (users, rps) in sorted(shares.items()):
        args.extend((str(index), f"{users}:{rps!r}"))
    return args


def _dispatched(raw: list) -> list[tuple[int, int]]:
    """REASSIGN_SCRIPT's answer: (index, generation) of each shard queued."""
    result = []
    for item in raw:
        shard, generation = decode(item).split(":")
        result.append((int(shard), int(generation)))
    return result


def mark_silent_shards_lost(client: redis.Redis, session_id: int) -> dict[int, ShardState]:
    """Running shards whose heartbeat expired are lost; returns every shard's state."""
    keys = SessionKeys(session_id)
    flat = client.eval(
        MARK_SILENT_SCRIPT, 1, keys.shards, keys.heartbeat(""), ShardState.RUNNING, ShardState.LOST
    )
    return {int(decode(flat[i])): ShardState(decode(flat[i + 1])) for i in range(0, len(flat), 2)}


def mark_lost(client: redis.Redis, session_id: int, shard_indices: list[int]) -> None:
    client.hset(
        SessionKeys(session_id).shards,
        mapping={str(index): ShardState.LOST for index in shard_indices},
    )


def read_assignments(client: redis.Redis, session_id: int) -> dict[int, Assignment]:
    raw = client.hgetall(SessionKeys(session_id).assign)
    return {int(decode(index)): Assignment.decode(value) for index, value in raw.items()}


def read_heartbeats(client: redis.Redis, session_id: int) -> dict[int, dict]:
    """The live heartbeat (JSON, see ``shard``) of each shard that has one, by shard index."""
    keys = SessionKeys(session_id)
    indices = sorted(int(decode(index)) for index in client.hkeys(keys.assign))
    if not indices:
        return {}
    raw = client.mget([keys.heartbeat(index) for index in indices])
    return {
        index: json.loads(value)
        for index, value in zip(indices, raw, strict=True)
        if value is not None
    }


def request_stop(client: redis.Redis, session_id: int) -> None:
    """Every shard of the session stops sending within CONTROL_POLL_INTERVAL_S. The time of
    the request is kept beside the state, so the monitor knows until when a stopping shard is
    worth waiting for."""
    client.hset(
        SessionKeys(session_id).control,
        mapping={"state": ControlState.STOPPING, STOP_REQUESTED_FIELD: repr(time.time())},
    )


def read_stop_requested_at(client: redis.Redis, session_id: int) -> float | None:
    """When the session's stop was asked (epoch seconds), or None if it was not."""
    raw = client.hget(SessionKeys(session_id).control, STOP_REQUESTED_FIELD)
    return float(raw) if raw is not None else None


def set_load_factor(client: redis.Redis, session_id: int, factor: float) -> None:
    client.hset(SessionKeys(session_id).control, "factor", repr(factor))


def set_endpoint_weights(client: redis.Redis, session_id: int, weights: Sequence[float]) -> None:
    """Every shard of the session picks endpoints by ``weights`` (one per endpoint of the
    plan, by position; at least one positive) from its next control poll. The plan itself stays
    as it started: its endpoints' positions key the statistics for the session's whole life."""
    client.hset(
        SessionKeys(session_id).control,
        WEIGHTS_FIELD,
        json.dumps([float(weight) for weight in weights]),
    )


def read_load_factor(client: redis.Redis, session_id: int) -> float:
    raw = client.hget(SessionKeys(session_id).control, "factor")
    return float(raw) if raw is not None else 1.0


def read_load_started_at(client: redis.Redis, session_id: int) -> float | None:
    """When the session's first shard began sending (epoch seconds), or None if none has."""
    raw = client.hget(SessionKeys(session_id).control, LOAD_STARTED_FIELD)
    return float(raw) if raw is not None else None


def emergency_stop_all(client: redis.Redis) -> float:
    """Every shard started before now stops within a poll, whatever session it serves."""
    now = time.time()
    client.set(EMERGENCY_KEY, repr(now))
    return now


def forget_session(client: redis.Redis, session_id: int) -> None:
    """Drop a finished session's volatile keys; the database has everything by now."""
    keys = SessionKeys(session_id)
    indices = [decode(index) for index in client.hkeys(keys.assign)]
    client.delete(*keys.all(indices))
    if indices:
        client.hdel(HEARTBEATS_KEY, *(keys.heartbeat_field(index) for index in indices))
    client.srem(DISPATCHED_SESSIONS_KEY, session_id)
