"""The Redis side of a session: key names, control states, and the atomic scripts.

Redis carries what is fast and volatile (control flags, heartbeats, live counters); the
database row stays the truth about a session's lifecycle. Everything here may vanish: a shard
that finds no control state stops sending, and the monitor copies totals into the database
every second.

Keys of session 42 (all under ``lt:s:42:``):
- ``plan``      JSON: endpoints, think times, deadline, users per shard (written at start)
- ``state``     "running" while load is wanted; anything else (or nothing) means stop
- ``shards``    hash shard index -> queued / running / done / interrupted / lost
- ``hb:{n}``    shard n's heartbeat (JSON, expires after HEARTBEAT_TTL_S)
- ``stats``     cumulative counters, ``series`` per-second counters (see ``stats``)
- ``monitor``   id of the monitor chain that owns the session (expires when it stops ticking)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

KEY_PREFIX = "lt"
# Counters of a session nobody finalized (everything was shut down) expire eventually.
ORPHAN_TTL_S = 7 * 24 * 3600


class ControlState:
    RUNNING = "running"
    STOPPING = "stopping"


class ShardState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # stopped because the session stopped or its duration ended
    INTERRUPTED = "interrupted"  # stopped because its worker shut down or lost Redis
    LOST = "lost"  # heartbeat expired: the worker died (marked by the monitor)

    FINISHED = frozenset({DONE, INTERRUPTED, LOST})


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
    def state(self) -> str:
        return f"{self._base}:state"

    @property
    def shards(self) -> str:
        return f"{self._base}:shards"

    def heartbeat(self, shard_index: int) -> str:
        return f"{self._base}:hb:{shard_index}"

    @property
    def stats(self) -> str:
        return f"{self._base}:stats"

    @property
    def series(self) -> str:
        return f"{self._base}:series"

    @property
    def monitor(self) -> str:
        return f"{self._base}:monitor"

    def all(self, shard_count: int) -> list[str]:
        return [
            self.plan,
            self.state,
            self.shards,
            self.stats,
            self.series,
            self.monitor,
            *(self.heartbeat(index) for index in range(shard_count)),
        ]


def worker_draining_key(hostname: str) -> str:
    """Set when a worker begins a warm shutdown, so its shards stop and flush at once."""
    return f"{KEY_PREFIX}:worker:{hostname}:draining"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def get_redis() -> redis.Redis:
    """A process-wide client for REDIS_URL (a connection pool, safe across threads)."""
    return _client(settings.REDIS_URL)


# One round trip, atomic: apply a shard's delta, set its state, refresh its heartbeat. The
# monitor therefore never sees a shard marked "done" without its last counts.
# KEYS: stats, series, shards, heartbeat.
# ARGV: shard index, new state or "", heartbeat JSON or "" (deletes it), heartbeat TTL ms,
#       orphan TTL s, then four sections "count, name, value, ...": increments, maxima,
#       minima, series increments.
FLUSH_SCRIPT = """
local stats, series, shards, heartbeat = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local i = 6
local n = tonumber(ARGV[i]); i = i + 1
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
if redis.call('EXISTS', stats) == 1 then redis.call('EXPIRE', stats, ARGV[5]) end
if redis.call('EXISTS', series) == 1 then redis.call('EXPIRE', series, ARGV[5]) end
if ARGV[2] ~= '' then
  redis.call('HSET', shards, ARGV[1], ARGV[2])
  redis.call('EXPIRE', shards, ARGV[5])
end
if ARGV[3] ~= '' then
  redis.call('SET', heartbeat, ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', heartbeat)
end
return 1
"""


def flush_script_args(
    shard_index: int,
    new_state: str | None,
    heartbeat: dict | None,
    increments: dict[str, int],
    maxima: dict[str, int],
    minima: dict[str, int],
    series: dict[str, int],
) -> list:
    args: list = [
        shard_index,
        new_state or "",
        json.dumps(heartbeat) if heartbeat is not None else "",
        int(settings.HEARTBEAT_TTL_S * 1000),
        ORPHAN_TTL_S,
    ]
    for section in (increments, maxima, minima, series):
        args.append(len(section))
        for name, value in section.items():
            args.extend((name, value))
    return args


# Read a hash and delete it in one step, so two monitors never count the same second twice.
DRAIN_HASH_SCRIPT = """
local values = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return values
"""

# The monitor chain that owns a session renews its claim; another chain is refused until the
# owner has stopped renewing for the claim's lifetime. ARGV: chain id, lifetime ms.
CLAIM_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if (not owner) or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def publish_session(client: redis.Redis, session_id: int, plan: dict) -> None:
    """Everything shards need before they are queued: the plan, the run state, shard slots."""
    keys = SessionKeys(session_id)
    shard_count = len(plan["shards"])
    with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.plan, json.dumps(plan), ex=ORPHAN_TTL_S)
        pipe.set(keys.state, ControlState.RUNNING, ex=ORPHAN_TTL_S)
        pipe.delete(keys.shards, keys.stats, keys.series)
        pipe.hset(keys.shards, mapping={str(i): ShardState.QUEUED for i in range(shard_count)})
        pipe.expire(keys.shards, ORPHAN_TTL_S)
        pipe.execute()


def request_stop(client: redis.Redis, session_id: int) -> None:
    """Every shard of the session stops sending within CONTROL_POLL_INTERVAL_S."""
    client.set(SessionKeys(session_id).state, ControlState.STOPPING, ex=ORPHAN_TTL_S)


def forget_session(client: redis.Redis, session_id: int, shard_count: int) -> None:
    """Drop a finished session's volatile keys; the database has everything by now."""
    client.delete(*SessionKeys(session_id).all(shard_count))


def decode(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value
