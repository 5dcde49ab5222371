"""The live latency percentiles at a low rate: 8 answers a second with a spread of
latencies. One tick's answers cannot tell p95 from p99 (both are its slowest answer); the
sliding window holds enough answers for both, and the snapshot says which window it used."""

import json
import random

import pytest

from apps.sessions.models import TimeSeriesPoint
from apps.workers.control import SessionKeys

from ..support.sessions import start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_at_eight_answers_a_second_the_live_p95_and_p99_differ_and_say_their_window(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    # From 10 to 300 ms, spread evenly on a log scale: the slowest answers lie far enough
    # apart (a few % each) that no two percentiles share one of the histogram's buckets.
    spread = random.Random(21)
    counting_server.delays = {"/spread": lambda: 0.01 * 30 ** spread.random()}
    session_id = start_load(
        api,
        counting_server,
        endpoints=(("spread", "/spread", 1.0),),
        concurrent_users=6,
        target_rps=8,
        duration_minutes="0",
    )

    def live_with_p99():
        stored = redis_client.get(SessionKeys(session_id).snapshot)
        live = json.loads(stored)["data"].get("live", {}) if stored else {}
        return live if live.get("p99_ms") is not None else None

    try:
        # 100 answers are needed for p99: about 13 s at 8 a second.
        live = wait_until(live_with_p99, timeout_s=45)
        early = TimeSeriesPoint.objects.filter(session_id=session_id, p95_ms__isnull=False)
        assert early.filter(p99_ms__isnull=True).exists()  # said "too few", not the maximum
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    assert live["latency_answers"] >= 100
    assert live["latency_window_s"] >= 10
    assert live["p50_ms"] < live["p95_ms"] < live["p99_ms"]
    # Every point that has its p99 drew it from at least 100 answers: it differs from its p95.
    points = TimeSeriesPoint.objects.filter(session_id=session_id, p99_ms__isnull=False)
    assert points.exists()
    assert all(point.p95_ms < point.p99_ms for point in points)
