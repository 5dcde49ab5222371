"""A load worker shut down mid-session (scale down, `docker compose stop`): its shards stop at
once, flush, and move to the remaining workers; the counts stay exact."""

import json
import time

import pytest

from apps.workers.control import SessionKeys

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_warm_shutdown_drains_shards_to_the_remaining_workers(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    workers.ensure("worker", "load-test-1")
    workers.ensure("worker", "load-test-2")
    session_id = start_load(api, counting_server, concurrent_users=4, duration_minutes="0", **BRISK)
    heartbeat_key = SessionKeys(session_id).heartbeat(0)
    first = json.loads(wait_until(lambda: redis_client.get(heartbeat_key), timeout_s=15))
    wait_until(lambda: counting_server.total > 10, timeout_s=10)

    started_stop = time.monotonic()
    workers.stop(first["hostname"])  # SIGTERM: Celery's warm shutdown
    try:
        # The warm shutdown did not wait for an endless shard: the drain stopped it.
        assert time.monotonic() - started_stop < 10

        def replacement():
            beat = json.loads(redis_client.get(heartbeat_key) or "{}")
            return beat if beat.get("generation") == 2 and beat["users"] == 4 else None

        second = wait_until(replacement, timeout_s=15)
        assert second["hostname"] != first["hostname"]
        received = counting_server.total
        wait_until(lambda: counting_server.total > received + 10, timeout_s=10)

        assert api.post(f"/api/sessions/{session_id}/stop/").status_code == 202
        session = wait_for_status(session_id, timeout_s=20)
        assert session.status == "stopped"
        # The drained shard flushed its last counts before exiting: nothing lost.
        assert session.total_requests == counting_server.total
        kinds = [
            event["kind"]
            for event in api.get(f"/api/sessions/{session_id}/stats/").json()["recent_events"]
        ]
        assert "shard_redispatched" in kinds
    finally:
        workers.ensure("worker", first["hostname"].split("@", 1)[0])
