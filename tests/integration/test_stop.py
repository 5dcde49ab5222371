"""Stopping a session: nothing is sent a second later and nothing is lost from the count."""

import time

import pytest

from apps.sessions.models import LoadTestSession

from ..support.sessions import BRISK, create_session, make_target, start_load, wait_for_status
from ..support.traffic import wait_for_quiet
from ..support.waiting import wait_until
from ..support.workers import WORKER_ENV

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_stop_halts_load_within_a_second_and_keeps_exact_counts(
    api, operator, workers, counting_server, forget_redis_sessions
):
    counting_server.delay_s = 0.2  # so that requests are in flight when the stop comes
    session_id = start_load(
        api,
        counting_server,
        concurrent_users=5,
        duration_minutes="0",
        **BRISK,  # until stopped
    )
    wait_until(lambda: counting_server.total >= 20, timeout_s=15)

    stopped_at = time.monotonic()
    stopped = api.post(f"/api/sessions/{session_id}/stop/")
    assert stopped.status_code == 202
    assert stopped.json()["status"] == "stopping"
    # The next control poll (0.1 s) stops every shard: silent within a generous 3 s.
    assert wait_for_quiet(counting_server, timeout_s=5, quiet_s=1.5) - stopped_at < 3.0

    session = wait_for_status(session_id, timeout_s=20)
    assert session.status == "stopped"
    assert session.end_reason == "stopped_by_user"
    assert session.stopped_by == operator
    assert session.total_requests == counting_server.total
    failures = api.get(f"/api/sessions/{session_id}/stats/").json()["endpoints"][0]
    assert failures["failures_by_class"] == {}  # in-flight requests were awaited, not cut


def test_request_outliving_the_stop_grace_is_counted_as_cancelled(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.delay_s = 30  # far beyond the workers' STOP_GRACE_S
    session_id = start_load(
        api,
        counting_server,
        concurrent_users=3,
        request_interval_min=0,
        request_interval_max=0,
        duration_minutes="0",
    )
    wait_until(lambda: counting_server.total == 3, timeout_s=15)

    assert api.post(f"/api/sessions/{session_id}/stop/").status_code == 202
    grace_s = float(WORKER_ENV["STOP_GRACE_S"])
    session = wait_for_status(session_id, {"stopped", "failed"}, timeout_s=grace_s + 15)

    assert session.status == "stopped"
    assert session.total_requests == counting_server.total == 3
    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    assert stats["total_failures"] == 3
    assert stats["endpoints"][0]["failures_by_class"] == {"cancelled": 3}


def test_stopping_a_pending_session_ends_it_without_load(api, counting_server):
    session_id = create_session(api, make_target(api, counting_server))
    response = api.post(f"/api/sessions/{session_id}/stop/")
    assert response.status_code == 202
    assert response.json()["status"] == "stopped"
    assert counting_server.total == 0
    # A finished session cannot be started or stopped again.
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 409
    assert api.post(f"/api/sessions/{session_id}/stop/").status_code == 409
    assert LoadTestSession.objects.get(pk=session_id).status == "stopped"
