"""The monitor's decisions, one tick at a time: re-dispatch lost shards, and never leave a
session active once nothing can run it."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sessions.lifecycle.monitor import monitor_active_sessions, monitor_session, monitor_tick
from apps.sessions.models import Endpoint, LoadTestSession, SessionEvent, Target
from apps.workers.control import (
    SessionKeys,
    publish_session,
    read_assignments,
    reassign,
    request_stop,
)
from apps.workers.vocabulary import ShardState

from ..support.engine import plan_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_session(db, redis_client, forget_redis_sessions):
    """A running session of two shards as Redis would hold it, with no worker behind it.

    Its Redis control state says "stopping", so that a shard a real worker might pick up
    from these tests exits at once; the monitor goes by the database status.
    """
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    plan = plan_for([("a", "http://127.0.0.1:9/a")], request_interval_min=1.0,
                    request_interval_max=1.0)  # fmt: skip
    session = LoadTestSession.objects.create(
        session_name="orphan",
        target=target,
        status="running",
        duration_minutes=0,
        start_time=timezone.now() - timedelta(minutes=5),
        plan=plan.to_json(),
    )
    publish_session(redis_client, session.pk, plan)
    reassign(redis_client, session.pk, {0: (5, 0.0), 1: (5, 0.0)})
    request_stop(redis_client, session.pk)
    return session


def mark(redis_client, session, states: dict[int, str], heartbeats=()):
    keys = SessionKeys(session.pk)
    redis_client.hset(keys.shards, mapping={str(i): state for i, state in states.items()})
    for index in heartbeats:
        redis_client.set(keys.heartbeat(index), "{}", px=10_000)


def test_shard_whose_heartbeat_expired_is_redispatched_as_the_next_generation(
    running_session, redis_client
):
    mark(redis_client, running_session, {0: ShardState.RUNNING, 1: ShardState.RUNNING}, [0])
    assert monitor_tick(running_session.pk) is True

    assignments = read_assignments(redis_client, running_session.pk)
    assert assignments[0].generation == 1  # alive: untouched
    assert assignments[1].generation == 2  # lost: replaced
    assert assignments[1].users == 5
    states = redis_client.hgetall(SessionKeys(running_session.pk).shards)
    assert states[b"1"] == b"queued"
    event = SessionEvent.objects.get(session=running_session)
    assert event.kind == "shard_redispatched" and event.shard == 1
    running_session.refresh_from_db()
    assert running_session.status == "running"


def test_stopping_session_with_a_lost_shard_is_finished(running_session, redis_client):
    LoadTestSession.objects.filter(pk=running_session.pk).update(
        status="stopping", end_reason="stopped_by_user"
    )
    mark(redis_client, running_session, {0: ShardState.DONE, 1: ShardState.RUNNING})
    assert monitor_tick(running_session.pk) is False
    running_session.refresh_from_db()
    assert running_session.status == "stopped"
    assert "[1] lost their worker" in running_session.end_detail


def test_shard_with_live_heartbeat_keeps_the_session_running(running_session, redis_client):
    mark(redis_client, running_session, {0: ShardState.RUNNING, 1: ShardState.RUNNING}, [0, 1])
    assert monitor_tick(running_session.pk) is True
    running_session.refresh_from_db()
    assert running_session.status == "running"


def test_a_tick_skips_while_another_tick_of_the_session_runs(running_session, redis_client):
    # Every shard finished: a tick would end the session.
    mark(redis_client, running_session, {0: ShardState.DONE, 1: ShardState.DONE})
    redis_client.set(SessionKeys(running_session.pk).monitor, "another-tick", px=10_000)
    assert monitor_session(running_session.pk) is True
    running_session.refresh_from_db()
    assert running_session.status == "running"  # untouched: the other tick decides
    redis_client.delete(SessionKeys(running_session.pk).monitor)
    assert monitor_session(running_session.pk) is False
    assert not redis_client.exists(SessionKeys(running_session.pk).monitor)  # released


def test_session_no_worker_has_run_for_too_long_fails(running_session, redis_client, settings):
    settings.SHARD_START_TIMEOUT_S = 30
    mark(redis_client, running_session, {0: ShardState.QUEUED, 1: ShardState.QUEUED})
    redis_client.set(SessionKeys(running_session.pk).alive, time.time() - 31)
    assert monitor_tick(running_session.pk) is False
    running_session.refresh_from_db()
    assert running_session.status == "failed"
    assert running_session.end_reason == "workers_lost"
    assert "'load' queue" in running_session.end_detail


def test_time_the_monitor_was_away_does_not_count_against_the_session(
    running_session, redis_client, settings
):
    """The whole service was stopped for a while and started again: its workers need a
    moment to take the queued shards, which the downtime must not eat into."""
    settings.SHARD_START_TIMEOUT_S = 30
    mark(redis_client, running_session, {0: ShardState.QUEUED, 1: ShardState.QUEUED})
    keys = SessionKeys(running_session.pk)
    redis_client.set(keys.alive, time.time() - 31)
    redis_client.set(keys.ticked, time.time() - 30)  # the monitor's last look, before the stop
    assert monitor_tick(running_session.pk) is True
    running_session.refresh_from_db()
    assert running_session.status == "running"


def test_beat_queues_a_tick_for_every_active_session_only(running_session):
    LoadTestSession.objects.create(session_name="done", target=running_session.target,
                                   status="completed")  # fmt: skip
    assert monitor_active_sessions() == 1


def queued_long_ago(redis_client, session, index, seconds_ago):
    keys = SessionKeys(session.pk)
    redis_client.hset(keys.shards, str(index), ShardState.QUEUED)
    redis_client.hset(keys.queued_at, str(index), int(time.time() - seconds_ago))


def test_queued_shard_whose_message_vanished_is_redispatched(
    running_session, redis_client, monkeypatch
):
    from apps.sessions.lifecycle import monitor

    monkeypatch.setattr(monitor, "LOAD_QUEUE", "test-empty-load-queue")
    mark(redis_client, running_session, {0: ShardState.RUNNING}, [0])
    queued_long_ago(redis_client, running_session, 1, seconds_ago=60)
    assert monitor_tick(running_session.pk) is True
    assert read_assignments(redis_client, running_session.pk)[1].generation == 2


def test_queued_shard_still_waiting_in_the_queue_is_left_alone(
    running_session, redis_client, monkeypatch
):
    from apps.sessions.lifecycle import monitor

    monkeypatch.setattr(monitor, "LOAD_QUEUE", "test-busy-load-queue")
    redis_client.rpush("test-busy-load-queue", "a message waiting for a free worker")
    try:
        mark(redis_client, running_session, {0: ShardState.RUNNING}, [0])
        queued_long_ago(redis_client, running_session, 1, seconds_ago=60)
        assert monitor_tick(running_session.pk) is True
        assert read_assignments(redis_client, running_session.pk)[1].generation == 1
    finally:
        redis_client.delete("test-busy-load-queue")
