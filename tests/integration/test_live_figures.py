"""Per-second figures for the dashboard's charts: latency percentiles, active users and
failures by class on the time series, written by the monitor from what already reaches it
(the cumulative histograms and the shards' heartbeats)."""

import json

import pytest

from apps.sessions.models import EndpointStats, TimeSeriesPoint
from apps.sessions.results.sync import TickGrowth
from apps.workers.control import SessionKeys
from apps.workers.histogram import bucket_index
from apps.workers.stats import EndpointTotals

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until


def test_tick_growth_is_the_difference_from_the_stored_row():
    """Only what the counters gained since the previous pass counts: an old slow request
    stays out of this tick's percentiles."""
    slow, fast = bucket_index(900_000), bucket_index(2_000)
    previous = EndpointStats(
        requests=10, failures_by_class={"http_5xx": 3}, histogram={str(slow): 10}
    )
    now = EndpointTotals(
        requests=30,
        failures_by_class={"http_5xx": 5, "network": 1},
        histogram={slow: 10, fast: 20},
    )
    growth = TickGrowth()
    growth.add(now, previous)
    assert growth.requests == 20
    assert growth.failures_by_class == {"http_5xx": 2, "network": 1}
    assert growth.histogram == {fast: 20}
    assert growth.percentiles_ms()[0.99] == pytest.approx(2.0, rel=0.01)


def test_tick_growth_without_samples_has_no_percentiles():
    assert TickGrowth().percentiles_ms() == {0.5: None, 0.95: None, 0.99: None}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_monitor_writes_percentiles_users_and_failure_classes(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    workers.ensure("worker", "load-test-1")
    counting_server.statuses["/broken"] = 500
    counting_server.delay_s = 0.02
    session_id = start_load(
        api,
        counting_server,
        endpoints=(("ping", "/ping", 1.0), ("broken", "/broken", 1.0)),
        concurrent_users=3,
        duration_minutes="0",
        **BRISK,
    )

    def figures_arrived():
        return TimeSeriesPoint.objects.filter(
            session_id=session_id, p95_ms__isnull=False, users=3
        ).exists()

    wait_until(figures_arrived, timeout_s=20)

    def snapshot_with_all_users():
        """The newest tick's snapshot, once it counts every user (a tick that found a
        heartbeat expired, on a starved machine, counts fewer until the next flush)."""
        stored = json.loads(redis_client.get(SessionKeys(session_id).snapshot))
        return stored if stored["data"]["live"]["users"] == 3 else None

    # The same tick's figures go out once, in the snapshot every open stream passes on.
    stored = wait_until(snapshot_with_all_users, timeout_s=20)
    assert stored["event"] == "stats" and stored["id"] >= 1
    assert sum(shard["users"] for shard in stored["data"]["shards"]) == 3
    assert set(stored["data"]["point"]) >= {"t", "rps", "p95_ms", "failures_by_class"}
    api.post(f"/api/sessions/{session_id}/stop/")
    wait_for_status(session_id)

    points = list(TimeSeriesPoint.objects.filter(session_id=session_id, p95_ms__isnull=False))
    assert points
    for point in points:
        # p99 needs 100 answers in the window, which a short run may not have had.
        assert point.p50_ms <= point.p95_ms <= (point.p99_ms or point.p95_ms)
        assert point.p50_ms >= 15  # the server answers after 20 ms
    failed = sum(
        (point.failures_by_class or {}).get("http_5xx", 0)
        for point in TimeSeriesPoint.objects.filter(session_id=session_id)
    )
    total_failed = sum(
        row.failures_by_class.get("http_5xx", 0)
        for row in EndpointStats.objects.filter(session_id=session_id)
    )
    # Per-tick counts add up to the totals: nothing counted twice, nothing lost.
    assert failed == total_failed > 0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_snapshot_left_by_an_earlier_session_of_the_same_id_is_not_this_ones(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    """The database reset, Redis kept: session ids start again at 1, and the last snapshot
    of the old session 1 (kept an hour for late streams) must not reach the new one's page
    as its own (its events, "ended") before the first tick."""
    from ..support.sessions import create_session, make_target

    session_id = create_session(api, make_target(api, counting_server), concurrent_users=1,
                                duration_minutes="0", **BRISK)  # fmt: skip
    keys = SessionKeys(session_id)
    stale = {"id": 99, "event": "end", "data": {"session": session_id, "status": "completed",
                                                 "recent_events": []}}  # fmt: skip
    redis_client.set(keys.snapshot, json.dumps(stale), ex=3600)
    redis_client.set(keys.snapshot_seq, 99, ex=3600)
    try:
        assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
        stored = redis_client.get(keys.snapshot)
        assert stored is None or json.loads(stored)["data"]["status"] != "completed"
        fresh = wait_until(lambda: redis_client.get(keys.snapshot), timeout_s=20)
        assert json.loads(fresh)["data"]["status"] in ("starting", "running")
        assert json.loads(fresh)["id"] < 99  # numbered afresh
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
