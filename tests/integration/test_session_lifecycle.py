"""A session runs end to end on real Celery workers and its counts equal what the target got."""

import pytest

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_session_completes_and_counts_every_request(
    api, workers, counting_server, forget_redis_sessions
):
    session_id = start_load(
        api,
        counting_server,
        concurrent_users=5,
        duration_minutes="0.05",
        **BRISK,  # 3 s
    )

    # Counts grow while it runs, visible through the API.
    wait_until(
        lambda: api.get(f"/api/sessions/{session_id}/stats/").json()["total_requests"] > 0,
        timeout_s=10,
    )
    session = wait_for_status(session_id)

    assert session.status == "completed", session.end_detail
    assert session.end_reason == "completed"
    assert counting_server.total > 50  # 5 users x ~13 req/s x 3 s, with generous slack
    assert session.total_requests == counting_server.total
    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    assert stats["total_requests"] == counting_server.total
    assert stats["total_failures"] == 0
    (endpoint,) = stats["endpoints"]
    assert endpoint["name"] == "ping"
    assert endpoint["requests"] == counting_server.count("/ping")
    assert 0 < endpoint["p50_ms"] <= endpoint["p95_ms"] <= endpoint["p99_ms"] <= endpoint["max_ms"]
    assert stats["run"]["rps"] > 0
    # Ran for about its duration, not much more.
    assert 2.5 <= (session.end_time - session.start_time).total_seconds() <= 15


def test_weights_split_requests_and_zero_leaves_an_endpoint_out(
    api, workers, counting_server, forget_redis_sessions
):
    session_id = start_load(
        api,
        counting_server,
        [("heavy", "/heavy", 3.0), ("light", "/light", 1.0), ("off", "/off", 1.0)],
        concurrent_users=10,
        request_interval_min=0.02,
        request_interval_max=0.05,
        duration_minutes="0.05",
        endpoint_weights={"off": 0},
    )
    session = wait_for_status(session_id)

    assert session.status == "completed", session.end_detail
    heavy, light = counting_server.count("/heavy"), counting_server.count("/light")
    total = heavy + light
    assert total >= 300
    assert counting_server.count("/off") == 0
    # Binomial(total, 0.75): allow five standard deviations (false alarm odds ~ 1 in 3.5M).
    tolerance = 5 * (0.75 * 0.25 / total) ** 0.5
    assert abs(heavy / total - 0.75) < tolerance, (heavy, light)
    assert session.total_requests == counting_server.total
