"""Redis loses a running session's state: the monitor rebuilds it from the database, one tick
at a time, and the session carries on; it ends only where carrying on makes no sense.

The end-to-end run (real workers, Redis restarted empty mid-session) is in
``test_self_healing.py``.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.sessions.lifecycle import recovery
from apps.sessions.lifecycle.monitor import monitor_tick, sync_statistics
from apps.sessions.models import (
    ConfigChange,
    Endpoint,
    EndpointStats,
    LoadTestSession,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)
from apps.workers.control import (
    WEIGHTS_FIELD,
    SessionKeys,
    publish_session,
    read_assignments,
    reassign,
)
from apps.workers.plan import plan_signing_key, read_trusted_plan
from apps.workers.stats import EndpointTotals, parse_stats_hash, stats_hash_fields

from ..support.engine import plan_for

# --- pure logic --------------------------------------------------------------------------------

# Shards the rebuild queues here go to a broker no worker consumes: in a full run the load
# workers are up, and a shard they started would add its own counts to the ones checked.
pytestmark = pytest.mark.usefixtures("unconsumed_broker")


def test_stats_hash_fields_read_back_as_the_same_totals():
    totals = {
        0: EndpointTotals(
            requests=1200,
            failures_by_class={"http_5xx": 30, "timeout": 2},
            not_sent={"suppressed": 7},
            latency_sum_us=98_765_432,
            min_us=812,
            max_us=2_500_000,
            histogram={10: 5, 400: 1195},
        ),
        2: EndpointTotals(not_sent={"missed": 3}),  # never sent a request, only missed some
    }
    assert parse_stats_hash(stats_hash_fields(totals)) == totals
    assert stats_hash_fields({}) == {}


@pytest.mark.parametrize(
    ("rate", "since_s", "limit_s", "expected"),
    [
        (40.0, 2.5, 16.0, 100),  # the rate over the time since the last save
        (40.0, 60.0, 16.0, 640),  # shards stop by themselves: never more than the limit
        (40.0, -3.0, 16.0, 0),  # a clock step back
        (0.0, 5.0, 16.0, 0),
        (-1.0, 5.0, 16.0, 0),
        (1e9, 1e9, 1e9, 10**18),  # huge, still an exact integer
    ],
)
def test_estimate_of_lost_requests(rate, since_s, limit_s, expected):
    assert recovery.estimate_lost_requests(rate, since_s, limit_s) == expected


def test_generation_floor_grows_with_time_and_is_never_zero():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert recovery.generation_floor(start, start) == 1
    assert recovery.generation_floor(start, start - timedelta(seconds=5)) == 1
    assert recovery.generation_floor(start, start + timedelta(seconds=95.25)) == 95_250
    later = recovery.generation_floor(start, start + timedelta(seconds=95.3))
    assert later > 95_250


# --- the monitor's rebuild (real Redis and database, no worker) -----------------------------


@pytest.fixture
def running_session(db, redis_client, forget_redis_sessions):
    """A running session of 10 users in two shards (LOAD_SHARD_USERS=5), its load started
    40 s ago, with counts the monitor has saved, as Redis would hold it before losing it."""
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a", weight=1.0)
    Endpoint.objects.create(target=target, name="b", url="/b", weight=3.0)
    plan = plan_for(
        [("a", "http://127.0.0.1:9/a"), ("b", "http://127.0.0.1:9/b")],
        request_interval_min=1.0,
        request_interval_max=1.0,
    )
    now = timezone.now()
    session = LoadTestSession.objects.create(
        session_name="resilient",
        target=target,
        status="running",
        concurrent_users=10,
        duration_minutes=5,
        start_time=now - timedelta(seconds=41),
        load_started_at=now - timedelta(seconds=40),
        plan=plan.to_json(),
    )
    publish_session(redis_client, session.pk, plan)
    reassign(redis_client, session.pk, {0: (5, 0.0), 1: (5, 0.0)})
    keys = SessionKeys(session.pk)
    redis_client.hset(
        keys.stats,
        mapping={"0:n": 300, "0:f:http_5xx": 12, "0:sum": 4_500_000, "0:h:300": 300,
                 "0:min": 9_000, "0:max": 31_000, "1:n": 900, "1:h:310": 900,
                 "1:sum": 14_000_000, "1:min": 10_000, "1:max": 20_000,
                 "1:s:suppressed": 4},
    )  # fmt: skip
    sync_statistics(session, redis_client)
    # The last 10 s before the save: 30 requests a second.
    saved = LoadTestSession.objects.get(pk=session.pk).stats_updated_at
    for second in range(10):
        TimeSeriesPoint.objects.update_or_create(
            session=session,
            timestamp=(saved - timedelta(seconds=second)).replace(microsecond=0),
            defaults={"requests": 30},
        )
    return LoadTestSession.objects.get(pk=session.pk)


def lose_redis_state(redis_client, session):
    keys = SessionKeys(session.pk)
    redis_client.delete(*keys.all([0, 1]))


@pytest.mark.django_db
def test_lost_state_is_rebuilt_from_the_database_and_counts_add_up(
    running_session, redis_client, settings, unconsumed_broker
):
    settings.LOAD_SHARD_USERS = 5
    keys = SessionKeys(running_session.pk)
    lose_redis_state(redis_client, running_session)

    assert monitor_tick(running_session.pk) is True

    session = LoadTestSession.objects.get(pk=running_session.pk)
    assert session.status == "running"  # it carries on
    assert session.total_requests == 1200  # the saved totals are kept
    stored = read_trusted_plan(redis_client.get(keys.plan), plan_signing_key(settings.SECRET_KEY),
                               settings.ALLOWED_TARGET_HOSTS)  # fmt: skip
    assert stored.to_json() == running_session.plan  # signed, as a shard can trust it
    control = redis_client.hgetall(keys.control)
    assert float(control[b"load_started_at"]) == pytest.approx(
        running_session.load_started_at.timestamp()
    )  # the duration still counts from the first start
    assert WEIGHTS_FIELD.encode() not in control  # no live change: the plan's weights hold
    floor = recovery.generation_floor(running_session.start_time, timezone.now())
    assignments = read_assignments(redis_client, running_session.pk)
    assert sorted(assignments) == [0, 1]
    for assignment in assignments.values():
        assert assignment.users == 5
        assert 40_000 < assignment.generation <= floor + 1  # above generation 1 of the lost state
    assert set(redis_client.hvals(keys.shards)) == {b"queued"}
    assert unconsumed_broker.llen("load") == 2  # and their tasks sent to the load queue
    assert int(redis_client.get(keys.snapshot_seq)) > 40_000

    event = SessionEvent.objects.get(session=session, kind="redis_state_rebuilt")
    assert "2 shard(s) queued again" in event.message
    # 30 requests a second, over the fraction of a second since the save.
    lack = int(event.message.split("may lack about ")[1].split()[0])
    assert 0 <= lack <= 30 * 5

    # The Redis counters restarted from the saved totals: a shard's increments add to them.
    redis_client.hincrby(keys.stats, "0:n", 25)
    redis_client.hincrby(keys.stats, "0:h:300", 25)
    redis_client.hincrby(keys.stats, "0:f:timeout", 1)
    assert monitor_tick(running_session.pk) is True
    session.refresh_from_db()
    assert session.total_requests == 1225
    assert session.total_failures == 13
    stats = EndpointStats.objects.get(session=session, name="a")
    assert stats.failures_by_class == {"http_5xx": 12, "timeout": 1}
    assert stats.min_ms == 9.0 and stats.max_ms == 31.0
    assert stats.mean_ms == pytest.approx(4_500_000 / 325 / 1000)  # sum kept, 25 more samples
    b = EndpointStats.objects.get(session=session, name="b")
    assert (b.requests, b.not_sent) == (900, {"suppressed": 4})


@pytest.mark.django_db
def test_rebuild_keeps_users_and_weights_changed_while_it_ran(
    running_session, redis_client, settings
):
    settings.LOAD_SHARD_USERS = 5
    LoadTestSession.objects.filter(pk=running_session.pk).update(
        concurrent_users=12, endpoint_weights={"a": 0, "b": 2}
    )
    ConfigChange.objects.create(
        object_type="session", object_id=running_session.pk, object_repr="s",
        field="endpoint_weights", old_value={}, new_value={"a": 0, "b": 2}, via="api",
    )  # fmt: skip
    lose_redis_state(redis_client, running_session)

    assert monitor_tick(running_session.pk) is True

    keys = SessionKeys(running_session.pk)
    assert json.loads(redis_client.hget(keys.control, WEIGHTS_FIELD)) == [0.0, 2.0]
    assignments = read_assignments(redis_client, running_session.pk)
    assert sorted(a.users for a in assignments.values()) == [4, 4, 4]


@pytest.mark.django_db
def test_stopping_session_whose_state_vanished_ends_as_its_stop_asked(
    running_session, redis_client
):
    LoadTestSession.objects.filter(pk=running_session.pk).update(
        status="stopping", end_reason="stopped_by_user"
    )
    lose_redis_state(redis_client, running_session)

    assert monitor_tick(running_session.pk) is False
    session = LoadTestSession.objects.get(pk=running_session.pk)
    assert (session.status, session.end_reason) == ("stopped", "stopped_by_user")
    assert "Redis lost" in session.end_detail
    assert session.total_requests == 1200
    assert not redis_client.exists(SessionKeys(session.pk).plan)  # not rebuilt


@pytest.mark.django_db
def test_duration_over_during_the_outage_completes(running_session, redis_client):
    LoadTestSession.objects.filter(pk=running_session.pk).update(
        load_started_at=timezone.now() - timedelta(minutes=5, seconds=1)
    )
    lose_redis_state(redis_client, running_session)

    assert monitor_tick(running_session.pk) is False
    session = LoadTestSession.objects.get(pk=running_session.pk)
    assert (session.status, session.end_reason) == ("completed", "completed")
    assert "may lack about" in session.end_detail
    assert not redis_client.exists(SessionKeys(session.pk).plan)


@pytest.mark.django_db
def test_target_no_longer_allowed_ends_the_session_redis_lost(
    running_session, redis_client, settings
):
    lose_redis_state(redis_client, running_session)
    settings.ALLOWED_TARGET_HOSTS = ["example.test:80"]

    assert monitor_tick(running_session.pk) is False
    session = LoadTestSession.objects.get(pk=running_session.pk)
    assert (session.status, session.end_reason) == ("failed", "redis_lost")
    assert "ALLOWED_TARGET_HOSTS" in session.end_detail
    assert not redis_client.exists(SessionKeys(session.pk).plan)  # no load sent there


@pytest.mark.django_db
def test_saved_totals_are_what_the_monitor_copied(running_session, redis_client):
    plan = running_session.read_plan()
    stats = parse_stats_hash(redis_client.hgetall(SessionKeys(running_session.pk).stats))
    assert recovery.saved_totals(running_session, plan) == stats
