"""No session stays active once nothing runs it: the monitor finalizes it with a reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sessions.models import Endpoint, LoadTestSession, Target
from apps.workers.control import SessionKeys, ShardState
from apps.workers.monitor import monitor_tick, watchdog

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_session(db):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    plan = {
        "endpoints": [{"name": "a", "method": "GET", "url": "http://127.0.0.1:9/a"}],
        "shards": [5, 5],
        "deadline": None,
    }
    return LoadTestSession.objects.create(
        session_name="orphan",
        target=target,
        status="running",
        duration_minutes=0,
        start_time=timezone.now() - timedelta(minutes=5),
        plan=plan,
    )


def test_session_whose_redis_state_vanished_is_failed_not_left_running(
    running_session, redis_client, forget_redis_sessions
):
    # Nothing in Redis for this session: Redis was restarted, say, with everything stopped.
    assert monitor_tick(running_session.pk, "chain-1") is False
    running_session.refresh_from_db()
    assert running_session.status == "failed"
    assert running_session.end_reason == "workers_lost"
    assert running_session.end_time is not None


def test_shard_whose_heartbeat_expired_is_marked_lost(
    running_session, redis_client, forget_redis_sessions
):
    keys = SessionKeys(running_session.pk)
    # Shard 0 finished normally; shard 1 says running but its heartbeat is gone.
    redis_client.hset(keys.shards, mapping={"0": ShardState.DONE, "1": ShardState.RUNNING})
    assert monitor_tick(running_session.pk, "chain-1") is False
    running_session.refresh_from_db()
    assert running_session.status == "failed"
    assert "[1]" in running_session.end_detail


def test_shard_with_live_heartbeat_keeps_the_session_running(
    running_session, redis_client, forget_redis_sessions
):
    keys = SessionKeys(running_session.pk)
    redis_client.hset(keys.shards, mapping={"0": ShardState.RUNNING, "1": ShardState.RUNNING})
    redis_client.set(keys.heartbeat(0), "{}", px=10_000)
    redis_client.set(keys.heartbeat(1), "{}", px=10_000)
    assert monitor_tick(running_session.pk, "chain-1") is True
    # Another chain cannot take over while this one holds the claim.
    assert monitor_tick(running_session.pk, "chain-2") is False
    running_session.refresh_from_db()
    assert running_session.status == "running"


def test_watchdog_gives_an_orphaned_session_a_monitor_once(
    running_session, redis_client, forget_redis_sessions
):
    assert watchdog() == 1
    assert watchdog() == 0  # the new chain's claim is in place
    assert redis_client.exists(SessionKeys(running_session.pk).monitor)
