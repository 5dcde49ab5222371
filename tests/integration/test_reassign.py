"""Who runs what: the REASSIGN script's generations and shard states, the encoding of an
assignment, and the split of a session's users and rate into shards."""

import pytest

from apps.workers.control import (
    Assignment,
    SessionKeys,
    publish_session,
    read_assignments,
    reassign,
)
from apps.workers.dispatch import shard_shares
from apps.workers.vocabulary import ControlState

from ..support.engine import plan_for

PLAN = plan_for([])


def shard_states(redis_client, session_id: int) -> dict[int, str]:
    raw = redis_client.hgetall(SessionKeys(session_id).shards)
    return {int(index): state.decode() for index, state in raw.items()}


def set_states(redis_client, session_id: int, states: dict[int, str]) -> None:
    redis_client.hset(SessionKeys(session_id).shards, mapping=states)


# --- publish_session ------------------------------------------------------------------------


def test_publishing_a_session_writes_its_plan_and_running_control_state(
    redis_client, forget_redis_sessions
):
    session_id = 880001
    keys = SessionKeys(session_id)
    redis_client.hset(keys.assign, "0", "7:5:0.0")  # left over from an earlier run
    publish_session(redis_client, session_id, PLAN)
    assert redis_client.get(keys.plan) is not None
    assert redis_client.hgetall(keys.control) == {
        b"state": ControlState.RUNNING.encode(),
        b"factor": b"1",
    }
    assert redis_client.exists(keys.assign) == 0
    assert redis_client.ttl(keys.plan) > 0
    assert redis_client.ttl(keys.control) > 0


# --- reassign -------------------------------------------------------------------------------


def test_first_assignment_dispatches_every_index_at_generation_one(
    redis_client, forget_redis_sessions
):
    session_id = 880002
    publish_session(redis_client, session_id, PLAN)
    dispatched = reassign(redis_client, session_id, {0: (50, 10.0), 1: (50, 10.0), 2: (20, 4.0)})
    assert sorted(dispatched) == [(0, 1), (1, 1), (2, 1)]
    assert shard_states(redis_client, session_id) == {0: "queued", 1: "queued", 2: "queued"}
    assert read_assignments(redis_client, session_id) == {
        0: Assignment(1, 50, 10.0),
        1: Assignment(1, 50, 10.0),
        2: Assignment(1, 20, 4.0),
    }


@pytest.mark.parametrize("state", ["running", "queued"])
def test_reassigning_live_shards_keeps_their_generation_and_dispatches_nothing(
    redis_client, forget_redis_sessions, state
):
    session_id = 880003
    reassign(redis_client, session_id, {0: (50, 0.0), 1: (50, 0.0)})
    set_states(redis_client, session_id, {0: state, 1: state})
    assert reassign(redis_client, session_id, {0: (30, 0.0), 1: (70, 0.0)}) == []
    assert read_assignments(redis_client, session_id) == {
        0: Assignment(1, 30, 0.0),
        1: Assignment(1, 70, 0.0),
    }
    assert shard_states(redis_client, session_id) == {0: state, 1: state}


def test_taking_every_user_away_keeps_the_generation_so_the_shard_retires_itself(
    redis_client, forget_redis_sessions
):
    session_id = 880004
    reassign(redis_client, session_id, {0: (50, 5.0), 1: (50, 5.0)})
    set_states(redis_client, session_id, {0: "running", 1: "running"})
    assert reassign(redis_client, session_id, {0: (50, 10.0), 1: (0, 0.0)}) == []
    assert read_assignments(redis_client, session_id) == {
        0: Assignment(1, 50, 10.0),
        1: Assignment(1, 0, 0.0),
    }
    assert shard_states(redis_client, session_id)[1] == "running"  # the shard marks itself


def test_a_new_index_with_no_users_is_recorded_but_not_dispatched(
    redis_client, forget_redis_sessions
):
    session_id = 880005
    assert reassign(redis_client, session_id, {3: (0, 0.0)}) == []
    assert read_assignments(redis_client, session_id) == {3: Assignment(0, 0, 0.0)}
    assert shard_states(redis_client, session_id) == {}


@pytest.mark.parametrize("state", ["done", "retired", "interrupted", "lost"])
def test_a_finished_shard_that_gets_users_again_is_dispatched_at_the_next_generation(
    redis_client, forget_redis_sessions, state
):
    session_id = 880006
    reassign(redis_client, session_id, {0: (40, 8.0), 1: (40, 8.0)})
    set_states(redis_client, session_id, {0: "running", 1: state})
    assert reassign(redis_client, session_id, {0: (40, 8.0), 1: (25, 5.0)}) == [(1, 2)]
    assert read_assignments(redis_client, session_id) == {
        0: Assignment(1, 40, 8.0),
        1: Assignment(2, 25, 5.0),
    }
    assert shard_states(redis_client, session_id) == {0: "running", 1: "queued"}
    set_states(redis_client, session_id, {1: state})
    assert reassign(redis_client, session_id, {1: (25, 5.0)}) == [(1, 3)]


@pytest.mark.parametrize("state", ["done", "retired", "interrupted", "lost"])
def test_a_finished_shard_given_no_users_stays_finished_at_its_generation(
    redis_client, forget_redis_sessions, state
):
    session_id = 880007
    reassign(redis_client, session_id, {0: (40, 0.0)})
    set_states(redis_client, session_id, {0: state})
    assert reassign(redis_client, session_id, {0: (0, 0.0)}) == []
    assert read_assignments(redis_client, session_id) == {0: Assignment(1, 0, 0.0)}
    assert shard_states(redis_client, session_id) == {0: state}


def test_a_retired_shard_with_zero_users_comes_back_at_the_next_generation(
    redis_client, forget_redis_sessions
):
    session_id = 880008
    reassign(redis_client, session_id, {0: (50, 0.0), 1: (50, 0.0)})
    set_states(redis_client, session_id, {0: "running", 1: "running"})
    reassign(redis_client, session_id, {0: (50, 0.0), 1: (0, 0.0)})
    set_states(redis_client, session_id, {1: "retired"})
    assert reassign(redis_client, session_id, {0: (50, 0.0), 1: (50, 0.0)}) == [(1, 2)]
    assert read_assignments(redis_client, session_id)[1] == Assignment(2, 50, 0.0)


def test_reassign_sets_an_expiry_on_both_hashes(redis_client, forget_redis_sessions):
    session_id = 880009
    reassign(redis_client, session_id, {0: (10, 0.0)})
    keys = SessionKeys(session_id)
    assert 0 < redis_client.ttl(keys.assign) <= 604800
    assert 0 < redis_client.ttl(keys.shards) <= 604800


def test_read_assignments_of_an_unknown_session_is_empty(redis_client, forget_redis_sessions):
    assert read_assignments(redis_client, 880010) == {}


# --- Assignment encoding --------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        Assignment(1, 50, 12.5),
        Assignment(3, 0, 0.0),
        Assignment(12, 7, 1 / 3),
        Assignment(1, 1, 1e-05),
        Assignment(999, 100_000, 123456.789),
    ],
)
def test_an_assignment_survives_encoding(assignment):
    encoded = assignment.encode()
    assert Assignment.decode(encoded) == assignment
    assert Assignment.decode(encoded.encode()) == assignment  # as Redis returns it


def test_an_assignment_encodes_as_generation_users_rate():
    assert Assignment(2, 50, 12.5).encode() == "2:50:12.5"
    assert Assignment(1, 0, 0.0).encode() == "1:0:0.0"


def test_decoding_nothing_gives_no_assignment():
    assert Assignment.decode(None) is None


@pytest.mark.parametrize("rps", [12.5, 0.0, 1 / 3, 2500.125])
def test_the_rate_round_trips_through_the_reassign_script(redis_client, forget_redis_sessions, rps):
    session_id = 880011
    reassign(redis_client, session_id, {0: (9, rps)})
    assert read_assignments(redis_client, session_id) == {0: Assignment(1, 9, rps)}


# --- shard_shares --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "per_shard", "sizes"),
    [
        (1, 50, [1]),
        (50, 50, [50]),
        (51, 50, [26, 25]),
        (101, 50, [34, 34, 33]),
        (120, 50, [40, 40, 40]),
        (1000, 50, [50] * 20),
        (7, 3, [3, 2, 2]),
        (10, 1, [1] * 10),
    ],
)
def test_users_are_split_into_the_fewest_even_shards_of_at_most_the_shard_size(
    settings, users, per_shard, sizes
):
    settings.LOAD_SHARD_USERS = per_shard
    shares = shard_shares(users, 100.0)
    assert [shard_users for shard_users, _ in shares] == sizes
    assert all(shard_users <= per_shard for shard_users, _ in shares)
    assert sum(shard_users for shard_users, _ in shares) == users


@pytest.mark.parametrize(
    ("users", "per_shard", "target_rps"),
    [(101, 50, 100.0), (7, 3, 0.7), (120, 50, 33.3), (999, 17, 12345.678), (3, 50, 1.0)],
)
def test_the_rate_is_shared_in_proportion_to_users(settings, users, per_shard, target_rps):
    settings.LOAD_SHARD_USERS = per_shard
    shares = shard_shares(users, target_rps)
    assert sum(rps for _, rps in shares) == pytest.approx(target_rps, abs=1e-9, rel=0)
    for shard_users, rps in shares:
        assert rps == pytest.approx(target_rps * shard_users / users, rel=1e-12)


@pytest.mark.parametrize("target_rps", [None, 0, 0.0])
def test_the_closed_model_gives_every_shard_zero_rps(settings, target_rps):
    settings.LOAD_SHARD_USERS = 50
    shares = shard_shares(120, target_rps)
    assert [rps for _, rps in shares] == [0.0, 0.0, 0.0]
    assert all(isinstance(rps, float) for _, rps in shares)
