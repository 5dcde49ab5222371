"""More sessions than the load workers have processes: the start call warns, a session whose
shards wait in the queue says so, runs its whole duration once a process frees up (the
duration counts from the load's start), or fails saying what was missing."""

import pytest
from django.utils import timezone

from apps.sessions.lifecycle.monitor import monitor_session
from apps.sessions.models import LoadTestSession, SessionEvent
from apps.workers.inventory import LoadCapacity, load_capacity

from ..support.sessions import (
    BRISK,
    TERMINAL,
    create_session,
    make_target,
    start_load,
    wait_for_status,
)
from ..support.waiting import wait_until

WAITING = (("waiting", "/waiting", 1.0),)
BLOCKING = (("blocking", "/blocking", 1.0),)
NO_FREE_PROCESS = "live load workers (the 'load' queue) have 0 free processes (WORKER_CONCURRENCY)"


def test_the_shortfall_warning_counts_what_is_queued_already():
    idle = LoadCapacity(workers=1, processes=2, free=2, queued=0)
    assert idle.shortfall_warning(2) is None
    busy = LoadCapacity(workers=1, processes=2, free=1, queued=1)
    warning = busy.shortfall_warning(2)
    assert warning.startswith(
        "This session needs 2 shards, but live load workers (the 'load' queue) have 1 free "
        "process (WORKER_CONCURRENCY), 1 shard already queued: 2 will wait for a free process"
    )
    assert "SHARD_START_TIMEOUT_S" in warning
    nobody = LoadCapacity(workers=0, processes=0, free=0, queued=0)
    assert "no live load worker consumes the 'load' queue" in nobody.shortfall_warning(1)


@pytest.fixture
def all_processes_busy(api, workers, counting_server, redis_client, settings):
    """One shard per user, and a session of as many shards as the load workers have
    processes, running until stopped: nothing is free. Yields it once the workers' presence
    says so (they refresh it every 2 s)."""
    settings.LOAD_SHARD_USERS = 1
    idle = wait_until(
        lambda: (
            (capacity := load_capacity(redis_client)).free == capacity.processes > 0
            and capacity.queued == 0
            and capacity
        ),
        timeout_s=30,
    )
    blocker = start_load(api, counting_server, BLOCKING, concurrent_users=idle.processes,
                         duration_minutes="0", **BRISK)  # fmt: skip
    wait_until(lambda: load_capacity(redis_client).free == 0, timeout_s=20)
    yield blocker
    if LoadTestSession.objects.get(pk=blocker).status not in TERMINAL:
        api.post(f"/api/sessions/{blocker}/stop/")
        wait_for_status(blocker, timeout_s=20)


def start_waiting_session(api, counting_server, **config) -> tuple[int, list[str]]:
    session_id = create_session(api, make_target(api, counting_server, WAITING), **config)
    started = api.post(f"/api/sessions/{session_id}/start/")
    assert started.status_code == 202, started.json()
    return session_id, started.json()["warnings"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_waiting_session_says_why_then_runs_its_whole_duration(
    api, all_processes_busy, counting_server, forget_redis_sessions
):
    blocker = all_processes_busy
    session_id, warnings = start_waiting_session(
        api, counting_server, concurrent_users=1, duration_minutes="0.05", **BRISK
    )  # 3 s

    assert len(warnings) == 1 and NO_FREE_PROCESS in warnings[0], warnings
    detail = wait_until(
        lambda: api.get(f"/api/sessions/{session_id}/").json()["status_detail"], timeout_s=10
    )
    assert detail == f"1 shard queued; {NO_FREE_PROCESS}."
    waiting = api.get(f"/api/sessions/{session_id}/").json()
    assert waiting["status"] == "starting" and waiting["load_started_at"] is None
    event = SessionEvent.objects.get(session_id=session_id, kind="waiting_for_workers")
    assert event.message == detail
    assert counting_server.count("/waiting") == 0

    freed_at = timezone.now()
    api.post(f"/api/sessions/{blocker}/stop/")  # processes free up
    session = wait_for_status(session_id, timeout_s=30)

    assert session.status == "completed", session.end_detail
    assert session.total_requests == counting_server.count("/waiting") > 0
    assert session.load_started_at > freed_at  # its load waited for a free process...
    assert session.duration_s() >= 3.0  # ...and then ran the whole duration
    assert session.status_detail == ""


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_that_gets_no_worker_fails_saying_what_is_missing(
    api, all_processes_busy, counting_server, forget_redis_sessions, redis_client, settings
):
    session_id, warnings = start_waiting_session(
        api, counting_server, concurrent_users=2, duration_minutes="0.05", **BRISK
    )
    assert len(warnings) == 1 and "needs 2 shards" in warnings[0], warnings

    # This process's monitor, with SHARD_START_TIMEOUT_S at 3 s, ends the session; the control
    # worker's (60 s) would not yet.
    settings.SHARD_START_TIMEOUT_S = 3
    session = wait_until(
        lambda: (
            not monitor_session(session_id)
            and (ended := LoadTestSession.objects.get(pk=session_id)).status in TERMINAL
            and ended
        ),
        timeout_s=20,
        interval_s=0.3,
    )

    assert session.status == "failed"
    assert session.end_reason == "no_capacity"
    assert session.end_detail.startswith(
        "No load worker started this session's shards within SHARD_START_TIMEOUT_S (3 s): "
        f"2 shards queued; {NO_FREE_PROCESS}. Add load workers"
    ), session.end_detail
    assert session.status_detail == ""

    # Its shards, picked up once the blocker stops, find it over and send nothing.
    api.post(f"/api/sessions/{all_processes_busy}/stop/")
    wait_for_status(all_processes_busy, timeout_s=20)
    wait_until(
        lambda: (
            (capacity := load_capacity(redis_client)).queued == 0
            and capacity.free == capacity.processes
        ),
        timeout_s=20,
    )
    assert counting_server.count("/waiting") == 0
