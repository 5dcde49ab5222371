"""A load worker shut down mid-session: its shards stop at once, flush, and the session ends
with a reason instead of staying `running`."""

import json
import time

import pytest

from .conftest import wait_until
from .sessions import BRISK, start_load, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_warm_shutdown_drains_shards_and_the_session_ends_workers_lost(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    session_id = start_load(api, counting_server, concurrent_users=4, duration_minutes="0", **BRISK)
    beat = wait_until(lambda: redis_client.get(f"lt:s:{session_id}:hb:0"), timeout_s=15)
    hostname = json.loads(beat)["hostname"]
    wait_until(lambda: counting_server.total > 10, timeout_s=10)

    started_stop = time.monotonic()
    workers.stop(hostname)  # SIGTERM: Celery's warm shutdown
    try:
        # The warm shutdown did not wait for an endless shard: the drain stopped it.
        assert time.monotonic() - started_stop < 10
        session = wait_for_status(session_id, timeout_s=20)
        assert session.status == "failed"
        assert session.end_reason == "workers_lost"
        assert "worker shut down" in session.end_detail
        # The drained shard flushed its last counts before exiting.
        assert session.total_requests == counting_server.total
    finally:
        workers.ensure("worker", hostname.split("@", 1)[0])
