"""Error handling: an unavailable endpoint trips its circuit breaker and the session's load
is reduced, both undone when it recovers; too many errors stop the session; a worker past its
resource ceiling sheds users and says so."""

import json

import pytest

from apps.sessions.choices import EVENT_MILESTONES
from apps.workers.control import SessionKeys

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.traffic import rate_over
from ..support.waiting import wait_until
from ..support.workers import WORKER_ENV

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def event_kinds(session_id):
    from apps.sessions.models import SessionEvent

    return [event.kind for event in SessionEvent.objects.filter(session_id=session_id)]


def test_breaker_and_load_reduction_follow_an_unavailable_endpoint_and_recover(
    api, workers, counting_server, forget_redis_sessions
):
    session_id = start_load(
        api, counting_server, [("flaky", "/flaky", 1.0)], concurrent_users=4,
        duration_minutes="0", **BRISK,
    )  # fmt: skip
    wait_until(lambda: counting_server.total > 20, timeout_s=15)
    healthy_rps = rate_over(counting_server, "/flaky", 1.0)

    counting_server.statuses["/flaky"] = 503
    wait_until(lambda: "breaker_opened" in event_kinds(session_id), timeout_s=10)
    wait_until(lambda: "load_reduced" in event_kinds(session_id), timeout_s=10)
    # Open breaker: probes only, one per cooldown per shard (at most 2 s here).
    assert rate_over(counting_server, "/flaky", 2.0) < max(3.0, healthy_rps / 10)

    del counting_server.statuses["/flaky"]
    wait_until(lambda: "breaker_closed" in event_kinds(session_id), timeout_s=10)
    wait_until(lambda: "load_restored" in event_kinds(session_id), timeout_s=15)
    wait_until(lambda: rate_over(counting_server, "/flaky", 1.0) > healthy_rps / 2,
               timeout_s=10, interval_s=0, what="The healthy rate back")  # fmt: skip

    api.post(f"/api/sessions/{session_id}/stop/")
    session = wait_for_status(session_id, timeout_s=20)
    assert session.total_requests == counting_server.total
    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    assert stats["not_sent"]["suppressed"] > 0
    assert stats["endpoints"][0]["failures_by_class"]["http_5xx"] >= int(
        WORKER_ENV["CIRCUIT_BREAKER_FAILURES"]
    )


def test_deliberate_500s_keep_their_load(api, workers, counting_server, forget_redis_sessions):
    """An endpoint that fails on purpose (the seed's /performance/error) is not "down"."""
    counting_server.statuses["/error"] = 500
    session_id = start_load(
        api, counting_server, [("error", "/error", 1.0)], concurrent_users=3,
        duration_minutes="0.05", max_errors_per_minute=0, **BRISK,
    )  # fmt: skip
    session = wait_for_status(session_id, timeout_s=30)
    assert session.status == "completed"
    assert session.total_failures == session.total_requests == counting_server.total > 50
    # The run's own steps (created, started, stop asked, ended) and nothing else: no
    # breaker, no load reduction.
    assert set(event_kinds(session_id)) <= EVENT_MILESTONES


def test_session_stops_itself_above_max_errors_per_minute(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.statuses["/error"] = 500
    session_id = start_load(
        api, counting_server, [("error", "/error", 1.0)], concurrent_users=3,
        duration_minutes="0", max_errors_per_minute=30, **BRISK,
    )  # fmt: skip
    session = wait_for_status(session_id, timeout_s=20)
    assert session.status == "stopped"
    assert session.end_reason == "error_threshold"
    assert "max_errors_per_minute (30)" in session.end_detail
    assert session.total_requests == counting_server.total


def test_worker_past_its_memory_ceiling_sheds_users_and_says_so(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    # Only a guarded worker consumes `load` during this test, so it gets the shard.
    others = [host for host in workers.hostnames if host.startswith("load-")]
    for hostname in others:
        workers.stop(hostname)
    guarded = workers.ensure("worker", "load-guarded", WORKER_MAX_RSS_MB="1")
    try:
        session_id = start_load(
            api, counting_server, concurrent_users=8, duration_minutes="0", **BRISK
        )
        key = SessionKeys(session_id).heartbeat(0)

        def shed():
            beat = json.loads(redis_client.get(key) or "{}")
            return beat if beat.get("resource_factor", 1) < 1 and beat["users"] < 8 else None

        beat = wait_until(shed, timeout_s=15)
        assert beat["hostname"] == guarded
        wait_until(lambda: "users_shed" in event_kinds(session_id), timeout_s=10)
        api.post(f"/api/sessions/{session_id}/stop/")
        session = wait_for_status(session_id, timeout_s=20)
        assert session.total_requests == counting_server.total
        message = session.events.filter(kind="users_shed").first().message
        assert "memory" in message and "> 1 MB" in message
    finally:
        workers.stop(guarded)
        for hostname in others:
            workers.ensure("worker", hostname.split("@", 1)[0])
