"""A second worker process, started from the same Procfile line under another name, shares
a session's shards with the first."""

import json

import pytest

from apps.workers.control import SessionKeys

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_second_worker_joins_the_same_sessions_work(
    api, workers, counting_server, forget_redis_sessions, redis_client, settings
):
    second = workers.ensure("worker", "load-test-2")
    settings.LOAD_SHARD_USERS = 2  # 8 users -> 4 shards; each worker runs 2 processes
    session_id = start_load(api, counting_server, concurrent_users=8, duration_minutes="0", **BRISK)

    def heartbeats_of_every_user():
        raw = [redis_client.get(SessionKeys(session_id).heartbeat(index)) for index in range(4)]
        beats = [json.loads(value) for value in raw] if all(raw) else []
        return beats if sum(beat["users"] for beat in beats) == 8 else None

    beats = wait_until(heartbeats_of_every_user, timeout_s=20)
    first = workers.ensure("worker", "load-test-1")
    assert {beat["hostname"] for beat in beats} == {first, second}
    assert sum(beat["users"] for beat in beats) == 8

    api.post(f"/api/sessions/{session_id}/stop/")
    session = wait_for_status(session_id, {"stopped", "failed"}, timeout_s=20)
    assert session.status == "stopped"
    assert session.total_requests == counting_server.total > 0
