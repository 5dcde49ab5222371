"""The FLUSH script against a real Redis: a shard's counts and events always land (unless the
session is unknown); its state and heartbeat only while it holds the assigned generation."""

import json

import pytest

from apps.workers.control import (
    EVENTS_BUFFERED,
    FLUSH_APPLIED,
    FLUSH_SCRIPT,
    FLUSH_SESSION_UNKNOWN,
    FLUSH_SUPERSEDED,
    HEARTBEATS_KEY,
    ORPHAN_TTL_S,
    SessionKeys,
    flush_script_args,
    flush_script_keys,
)
from apps.workers.vocabulary import ShardState

SHARD = 2
HEARTBEAT_TTL_S = 5.0


def flush(
    redis_client,
    session_id: int,
    *,
    generation: int = 1,
    new_state: str | None = "running",
    heartbeat: dict | None = None,
    events: list[dict] | None = None,
    request_samples: list[dict] | None = None,
    increments: dict[str, int] | None = None,
    maxima: dict[str, int] | None = None,
    minima: dict[str, int] | None = None,
    series: dict[str, int] | None = None,
) -> int:
    keys = SessionKeys(session_id)
    args = flush_script_args(
        shard_index=SHARD,
        generation=generation,
        new_state=new_state,
        heartbeat=heartbeat,
        events=events or [],
        increments=increments or {},
        maxima=maxima or {},
        minima=minima or {},
        series=series or {},
        heartbeat_ttl_s=HEARTBEAT_TTL_S,
        session_id=session_id,
        request_samples=request_samples or [],
    )
    script_keys = flush_script_keys(keys, SHARD)
    return redis_client.eval(FLUSH_SCRIPT, len(script_keys), *script_keys, *args)


def known_session(redis_client, session_id: int, assigned: str | None = "1:50:12.5") -> SessionKeys:
    """A session Redis knows (it has a plan), with shard SHARD assigned ``assigned`` and
    queued, as ``reassign`` leaves it."""
    keys = SessionKeys(session_id)
    redis_client.set(keys.plan, json.dumps({"endpoints": []}))
    if assigned is not None:
        redis_client.hset(keys.assign, str(SHARD), assigned)
        redis_client.hset(keys.shards, str(SHARD), ShardState.QUEUED)
    return keys


def as_str(mapping: dict) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in mapping.items()}


FULL_DELTA = {
    "events": [{"kind": "breaker_open", "endpoint": "/a"}, {"kind": "shed", "factor": 0.75}],
    "request_samples": [{"endpoint": "/a", "status": 200, "latency_ms": 1.5}],
    "increments": {"requests:/a": 10, "errors:/a": 2},
    "maxima": {"max_us:/a": 900},
    "minima": {"min_us:/a": 120},
    "series": {"1700000000:requests": 10},
}


# --- session unknown -------------------------------------------------------------------------


def test_a_flush_into_a_session_without_a_plan_is_refused_whole(
    redis_client, forget_redis_sessions
):
    session_id = 881001
    keys = SessionKeys(session_id)
    redis_client.hset(keys.assign, str(SHARD), "1:50:0.0")  # even with a matching generation
    result = flush(
        redis_client, session_id, new_state="done", heartbeat={"shard": SHARD}, **FULL_DELTA
    )
    assert result == FLUSH_SESSION_UNKNOWN == 0
    for key in (keys.stats, keys.series, keys.events, keys.requests, keys.shards,
                keys.heartbeat(SHARD)):  # fmt: skip
        assert redis_client.exists(key) == 0, key
    assert redis_client.hexists(HEARTBEATS_KEY, keys.heartbeat_field(SHARD)) == 0


# --- applied ---------------------------------------------------------------------------------


def test_a_flush_of_the_assigned_generation_applies_everything(redis_client, forget_redis_sessions):
    session_id = 881002
    keys = known_session(redis_client, session_id, assigned="3:50:12.5")
    heartbeat = {"shard": SHARD, "generation": 3, "users": 50}
    result = flush(
        redis_client,
        session_id,
        generation=3,
        new_state="running",
        heartbeat=heartbeat,
        **FULL_DELTA,
    )
    assert result == FLUSH_APPLIED == 1
    assert as_str(redis_client.hgetall(keys.stats)) == {
        "requests:/a": "10",
        "errors:/a": "2",
        "max_us:/a": "900",
        "min_us:/a": "120",
    }
    assert as_str(redis_client.hgetall(keys.series)) == {"1700000000:requests": "10"}
    assert redis_client.hget(keys.shards, str(SHARD)) == b"running"
    assert json.loads(redis_client.get(keys.heartbeat(SHARD))) == heartbeat
    assert 0 < redis_client.pttl(keys.heartbeat(SHARD)) <= HEARTBEAT_TTL_S * 1000
    field = keys.heartbeat_field(SHARD)
    assert field == f"{session_id}:{SHARD}"
    assert json.loads(redis_client.hget(HEARTBEATS_KEY, field)) == heartbeat
    assert [json.loads(item) for item in redis_client.lrange(keys.requests, 0, -1)] == (
        FULL_DELTA["request_samples"]
    )
    for key in (keys.stats, keys.series, keys.events, keys.requests):
        assert 0 < redis_client.ttl(key) <= ORPHAN_TTL_S, key


def test_increments_add_up_across_flushes(redis_client, forget_redis_sessions):
    session_id = 881003
    keys = known_session(redis_client, session_id)
    flush(redis_client, session_id, increments={"requests": 5}, series={"100:requests": 5})
    flush(redis_client, session_id, increments={"requests": 7, "errors": 1})
    flush(redis_client, session_id, series={"100:requests": 2, "101:requests": 3})
    assert as_str(redis_client.hgetall(keys.stats)) == {"requests": "12", "errors": "1"}
    assert as_str(redis_client.hgetall(keys.series)) == {"100:requests": "7", "101:requests": "3"}


def test_maxima_only_grow_and_minima_only_shrink(redis_client, forget_redis_sessions):
    session_id = 881004
    keys = known_session(redis_client, session_id)
    flush(redis_client, session_id, maxima={"max": 500, "peak": 9}, minima={"min": 200, "low": 5})
    flush(redis_client, session_id, maxima={"max": 300, "peak": 10}, minima={"min": 400, "low": 4})
    assert as_str(redis_client.hgetall(keys.stats)) == {
        "max": "500",
        "peak": "10",
        "min": "200",
        "low": "4",
    }
    flush(redis_client, session_id, maxima={"max": 1200}, minima={"min": 199})
    stats = as_str(redis_client.hgetall(keys.stats))
    assert (stats["max"], stats["min"]) == ("1200", "199")


def test_maxima_and_minima_compare_as_numbers_not_strings(redis_client, forget_redis_sessions):
    session_id = 881005
    keys = known_session(redis_client, session_id)
    flush(redis_client, session_id, maxima={"max": 9}, minima={"min": 10})
    flush(redis_client, session_id, maxima={"max": 10}, minima={"min": 9})
    assert as_str(redis_client.hgetall(keys.stats)) == {"max": "10", "min": "9"}


def test_events_are_pushed_newest_first(redis_client, forget_redis_sessions):
    session_id = 881006
    keys = known_session(redis_client, session_id)
    flush(redis_client, session_id, events=[{"n": 1}, {"n": 2}])
    flush(redis_client, session_id, events=[{"n": 3}])
    assert [json.loads(item) for item in redis_client.lrange(keys.events, 0, -1)] == [
        {"n": 3},
        {"n": 2},
        {"n": 1},
    ]


def test_the_event_list_is_trimmed_to_the_newest_events_buffered(
    redis_client, forget_redis_sessions
):
    session_id = 881007
    keys = known_session(redis_client, session_id)
    redis_client.rpush(keys.events, *(json.dumps({"old": n}) for n in range(EVENTS_BUFFERED)))
    flush(redis_client, session_id, events=[{"new": 1}, {"new": 2}, {"new": 3}])
    items = [json.loads(item) for item in redis_client.lrange(keys.events, 0, -1)]
    assert len(items) == EVENTS_BUFFERED
    assert items[:4] == [{"new": 3}, {"new": 2}, {"new": 1}, {"old": 0}]
    assert items[-1] == {"old": EVENTS_BUFFERED - 4}  # the three oldest were dropped


def test_more_events_than_the_buffer_in_one_flush_keep_the_newest(
    redis_client, forget_redis_sessions
):
    session_id = 881008
    keys = known_session(redis_client, session_id)
    events = [{"n": n} for n in range(EVENTS_BUFFERED + 5)]
    flush(redis_client, session_id, events=events)
    items = [json.loads(item) for item in redis_client.lrange(keys.events, 0, -1)]
    assert len(items) == EVENTS_BUFFERED
    assert items[0] == {"n": EVENTS_BUFFERED + 4}
    assert items[-1] == {"n": 5}


def test_sampled_requests_have_their_own_list_and_never_push_events_out(
    redis_client, forget_redis_sessions
):
    session_id = 881009
    keys = known_session(redis_client, session_id)
    flush(redis_client, session_id, events=[{"kind": "breaker_opened"}])
    samples = [{"n": n} for n in range(EVENTS_BUFFERED + 5)]
    flush(redis_client, session_id, request_samples=samples[:10])
    flush(redis_client, session_id, request_samples=samples[10:])
    assert [json.loads(item) for item in redis_client.lrange(keys.events, 0, -1)] == [
        {"kind": "breaker_opened"}
    ]
    items = [json.loads(item) for item in redis_client.lrange(keys.requests, 0, -1)]
    assert len(items) == EVENTS_BUFFERED
    assert (items[0], items[-1]) == ({"n": EVENTS_BUFFERED + 4}, {"n": 5})  # newest kept


def test_a_flush_without_a_new_state_leaves_the_state_alone(redis_client, forget_redis_sessions):
    session_id = 881009
    keys = known_session(redis_client, session_id)
    redis_client.hset(keys.shards, str(SHARD), "queued")
    assert flush(redis_client, session_id, new_state=None, heartbeat={"alive": 1}) == 1
    assert redis_client.hget(keys.shards, str(SHARD)) == b"queued"
    assert redis_client.exists(keys.heartbeat(SHARD)) == 1


def test_a_final_flush_deletes_the_heartbeat_and_the_global_field(
    redis_client, forget_redis_sessions
):
    session_id = 881010
    keys = known_session(redis_client, session_id)
    field = keys.heartbeat_field(SHARD)
    redis_client.hset(HEARTBEATS_KEY, "other:0", "{}")  # another shard's heartbeat stays
    assert flush(redis_client, session_id, heartbeat={"shard": SHARD}) == 1
    assert redis_client.exists(keys.heartbeat(SHARD)) == 1
    assert redis_client.hexists(HEARTBEATS_KEY, field)

    result = flush(
        redis_client, session_id, new_state="done", heartbeat=None, increments={"requests": 1}
    )
    assert result == FLUSH_APPLIED
    assert redis_client.exists(keys.heartbeat(SHARD)) == 0
    assert not redis_client.hexists(HEARTBEATS_KEY, field)
    assert redis_client.hget(HEARTBEATS_KEY, "other:0") == b"{}"
    assert redis_client.hget(keys.shards, str(SHARD)) == b"done"
    assert redis_client.hget(keys.stats, "requests") == b"1"


# --- superseded ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assigned", "generation"),
    [("2:50:0.0", 1), ("12:50:0.0", 1), ("1:50:0.0", 12), ("1:50:0.0", 2), (None, 1)],
    ids=["newer", "newer-with-same-prefix", "older-with-same-prefix", "older", "unassigned"],
)
def test_a_superseded_flush_applies_counts_and_events_but_not_state_or_heartbeat(
    redis_client, forget_redis_sessions, assigned, generation
):
    session_id = 881011
    keys = known_session(redis_client, session_id, assigned=assigned)
    field = keys.heartbeat_field(SHARD)
    redis_client.hset(keys.shards, str(SHARD), "running")
    redis_client.set(keys.heartbeat(SHARD), "current", px=60_000)
    redis_client.hset(HEARTBEATS_KEY, field, "current")

    for heartbeat, new_state in (({"stale": True}, "interrupted"), (None, "done")):
        result = flush(
            redis_client,
            session_id,
            generation=generation,
            new_state=new_state,
            heartbeat=heartbeat,
            **FULL_DELTA,
        )
        assert result == FLUSH_SUPERSEDED == 2

    stats = as_str(redis_client.hgetall(keys.stats))
    assert stats["requests:/a"] == "20"
    assert stats["max_us:/a"] == "900"
    assert as_str(redis_client.hgetall(keys.series)) == {"1700000000:requests": "20"}
    assert redis_client.llen(keys.events) == 4
    assert redis_client.hget(keys.shards, str(SHARD)) == b"running"
    assert redis_client.get(keys.heartbeat(SHARD)) == b"current"
    assert redis_client.pttl(keys.heartbeat(SHARD)) > HEARTBEAT_TTL_S * 1000
    assert redis_client.hget(HEARTBEATS_KEY, field) == b"current"
