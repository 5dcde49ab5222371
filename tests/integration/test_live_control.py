"""Live control: the user count changes while a session runs, spread over the live workers,
the workers API shows who runs what, and an emergency stop halts every session at once."""

import json
import time

import pytest

from apps.sessions.models import LoadTestSession
from apps.workers.control import HEARTBEATS_KEY

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.traffic import wait_for_quiet
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def live_shards(redis_client, session_id):
    beats = [json.loads(raw) for raw in redis_client.hvals(HEARTBEATS_KEY)]
    return [beat for beat in beats if beat["session"] == session_id]


def users_reach(redis_client, session_id, users, timeout_s):
    """Seconds until the session's heartbeats add up to ``users`` active users."""
    started = time.monotonic()
    wait_until(
        lambda: sum(b["users"] for b in live_shards(redis_client, session_id)) == users,
        timeout_s=timeout_s,
        interval_s=0.05,
    )
    return time.monotonic() - started


def test_patch_changes_users_live_across_workers(
    api, workers, counting_server, forget_redis_sessions, redis_client, settings
):
    first, second = workers.ensure("worker", "load-test-1"), workers.ensure("worker", "load-test-2")
    settings.LOAD_SHARD_USERS = 4
    session_id = start_load(api, counting_server, concurrent_users=4, duration_minutes="0", **BRISK)
    users_reach(redis_client, session_id, 4, timeout_s=15)

    response = api.patch(f"/api/sessions/{session_id}/", {"concurrent_users": 12}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["concurrent_users"] == 12
    # The issue asks for 2 s; the bound here is generous for a loaded CI machine.
    took_s = users_reach(redis_client, session_id, 12, timeout_s=6)
    print(f"4 -> 12 users in {took_s:.2f} s")
    assert took_s < 6
    hosts = {beat["hostname"] for beat in live_shards(redis_client, session_id)}
    assert hosts == {first, second}  # three shards of 4 over both workers

    listed = api.get("/api/workers/").json()["workers"]
    by_host = {worker["hostname"]: worker for worker in listed}
    assert {first, second} <= set(by_host)
    shards = [s for host in (first, second) for s in by_host[host]["shards"]]
    assert sum(s["users"] for s in shards if s["session"] == session_id) == 12
    assert all(s["last_heartbeat"] > time.time() - 5 for s in shards)
    assert by_host[first]["concurrency"] == 2 and "load" in by_host[first]["queues"]

    response = api.patch(f"/api/sessions/{session_id}/", {"concurrent_users": 4}, format="json")
    assert response.status_code == 200
    assert users_reach(redis_client, session_id, 4, timeout_s=6) < 6
    wait_until(lambda: len(live_shards(redis_client, session_id)) == 1, timeout_s=10)

    assert api.post(f"/api/sessions/{session_id}/stop/").status_code == 202
    session = wait_for_status(session_id, timeout_s=20)
    assert session.status == "stopped"
    assert session.total_requests == counting_server.total
    kinds = {event.kind for event in session.events.all()}
    assert "users_changed" in kinds


def test_running_session_accepts_only_a_user_change(
    api, workers, counting_server, forget_redis_sessions
):
    session_id = start_load(api, counting_server, concurrent_users=2, duration_minutes="0", **BRISK)
    url = f"/api/sessions/{session_id}/"
    assert api.patch(url, {"request_interval_max": 9}, format="json").status_code == 409
    assert api.patch(url, {"concurrent_users": 0}, format="json").status_code == 400
    assert api.patch(url, {"concurrent_users": "x"}, format="json").status_code == 400
    api.post(f"{url}stop/")
    wait_for_status(session_id, timeout_s=20)
    assert api.patch(url, {"concurrent_users": 3}, format="json").status_code == 409


def test_pending_session_config_can_be_edited_and_is_validated(api, counting_server):
    from ..support.sessions import create_session, make_target

    session_id = create_session(api, make_target(api, counting_server))
    url = f"/api/sessions/{session_id}/"
    response = api.patch(url, {"concurrent_users": 7, "target_rps": 20}, format="json")
    assert response.status_code == 200
    assert (response.json()["concurrent_users"], response.json()["target_rps"]) == (7, 20.0)
    response = api.patch(url, {"request_interval_min": 10}, format="json")  # above max 5
    assert response.status_code == 400 and "request_interval_min" in response.json()
    assert LoadTestSession.objects.get(pk=session_id).request_interval_min == 1.0


def test_emergency_stop_halts_every_session_on_every_worker(
    api,
    admin_api,
    administrator,
    workers,
    counting_server,
    forget_redis_sessions,
    redis_client,
    settings,
):
    workers.ensure("worker", "load-test-1"), workers.ensure("worker", "load-test-2")
    settings.LOAD_SHARD_USERS = 2  # two sessions x two shards fill both workers' processes
    sessions = [
        start_load(
            api,
            counting_server,
            [(f"s{n}", f"/s{n}", 1.0)],
            concurrent_users=4,
            duration_minutes="0",
            **BRISK,
        )
        for n in (1, 2)
    ]
    wait_until(
        lambda: len({b["hostname"] for s in sessions for b in live_shards(redis_client, s)}) == 2,
        timeout_s=15,
    )
    wait_until(lambda: counting_server.count("/s1") > 5 and counting_server.count("/s2") > 5,
               timeout_s=10)  # fmt: skip

    assert api.post("/api/emergency-stop/").status_code == 403  # an operator may not
    stopped_at = time.monotonic()
    response = admin_api.post("/api/emergency-stop/")
    assert response.status_code == 200
    assert sorted(response.json()["stopped_sessions"]) == sorted(sessions)
    # The next control poll (0.1 s) stops every shard: silent within a generous 3 s.
    assert wait_for_quiet(counting_server, timeout_s=5, quiet_s=1.5) - stopped_at < 3.0

    for session_id in sessions:
        session = wait_for_status(session_id, timeout_s=20)
        assert session.status == "stopped"
        assert session.end_reason == "emergency_stop"
        assert session.stopped_by == administrator
    assert sum(LoadTestSession.objects.get(pk=s).total_requests for s in sessions) == (
        counting_server.total
    )
