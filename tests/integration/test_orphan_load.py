"""No load without a row: if a session's row disappears behind the services' back, the
monitor stops its shards and forgets its Redis state, and so does the emergency stop."""

import time

import pytest

from apps.sessions.lifecycle.stop import stop_orphan_load
from apps.sessions.models import LoadTestSession
from apps.workers.control import (
    SessionKeys,
    dispatched_session_ids,
    mark_dispatched,
    publish_session,
)

from ..support.engine import plan_for
from ..support.sessions import BRISK, make_target, start_load, wait_for_status
from ..support.traffic import wait_for_quiet
from ..support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def listed_shards(viewer_api, session_id: int) -> list[dict]:
    workers = viewer_api.get("/api/workers/").json()["workers"]
    return [shard for w in workers for shard in w["shards"] if shard["session"] == session_id]


def state_left(redis_client, session_id: int) -> int:
    keys = SessionKeys(session_id)
    return redis_client.exists(keys.plan, keys.control, keys.assign, keys.shards)


def running_orphan(api, viewer_api, server) -> int:
    """A session sending load, then its row deleted behind the services' back."""
    session_id = start_load(api, server, concurrent_users=3, duration_minutes=0, **BRISK)
    wait_for_status(session_id, {"running"}, timeout_s=15)
    wait_until(lambda: server.total > 10, timeout_s=10)
    wait_until(lambda: listed_shards(viewer_api, session_id), timeout_s=10)
    LoadTestSession.objects.filter(pk=session_id).delete()
    return session_id


@pytest.mark.integration
def test_the_monitor_stops_the_load_of_a_session_whose_row_is_gone(
    api, viewer_api, workers, counting_server, redis_client, forget_redis_sessions
):
    session_id = running_orphan(api, viewer_api, counting_server)
    deleted_at = time.monotonic()

    wait_until(lambda: not state_left(redis_client, session_id), timeout_s=10)
    forgotten_s = time.monotonic() - deleted_at
    wait_until(lambda: not listed_shards(viewer_api, session_id), timeout_s=10)
    assert session_id not in dispatched_session_ids(redis_client)
    quiet_s = wait_for_quiet(counting_server) - deleted_at
    print(f"\norphan: state forgotten {forgotten_s:.2f} s, target quiet {quiet_s:.2f} s at most")


@pytest.mark.integration
def test_the_emergency_stop_stops_the_load_of_a_session_whose_row_is_gone(
    api, admin_api, viewer_api, workers, counting_server, redis_client, forget_redis_sessions
):
    session_id = running_orphan(api, viewer_api, counting_server)

    response = admin_api.post("/api/emergency-stop/")

    assert response.status_code == 200
    assert not state_left(redis_client, session_id)  # at once, not at the next monitor pass
    wait_until(lambda: not listed_shards(viewer_api, session_id), timeout_s=10)
    wait_for_quiet(counting_server)


def test_the_sweep_forgets_only_sessions_without_a_row(
    api, counting_server, redis_client, forget_redis_sessions
):
    target_id = make_target(api, counting_server)
    kept = LoadTestSession.objects.create(
        session_name="kept", target_id=target_id, status="running"
    )
    orphan_id = kept.pk + 1000
    plan = plan_for([])
    for session_id in (kept.pk, orphan_id):
        publish_session(redis_client, session_id, plan)
        mark_dispatched(redis_client, session_id)

    stop_orphan_load()  # the monitor's beat may get there first: the same outcome

    assert dispatched_session_ids(redis_client) == {kept.pk}
    assert redis_client.exists(SessionKeys(kept.pk).plan)
    assert not state_left(redis_client, orphan_id)
