"""Flower's task list shows the shards, not a flood of monitor ticks.

Beat queues a monitor pass every MONITOR_INTERVAL_S and the pass a tick per active session:
with task events on, those short tasks were 484 of the 488 tasks Flower listed after a few
minutes, and the shards (the tasks worth watching) scrolled away. A real Flower (the
Procfile's line) watches the fixture's real workers while a session runs.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter

import pytest
import requests

from apps.sessions.lifecycle.transitions import MONITOR_SESSION_TASK
from loadtest_project.procfile import ProcessGroup

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import assert_stays, wait_until
from .test_flower_auth import start_flower, wait_until_answering

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUN_S = 10.0
SHARD_TASK = "apps.workers.tasks.run_shard"
MONITOR_TASKS = {MONITOR_SESSION_TASK, "apps.sessions.tasks.monitor_active_sessions"}


def test_flower_lists_the_shards_and_hardly_any_monitor_ticks(
    workers, redis_url, tmp_path, api, counting_server, forget_redis_sessions
):
    credentials = ("flower", secrets.token_hex(16))
    group = ProcessGroup({k: v for k, v in os.environ.items() if k != "FLOWER_HOST"})
    try:
        process, url = start_flower(
            group, redis_url, tmp_path, FLOWER_BASIC_AUTH=":".join(credentials)
        )
        wait_until_answering(process, url, tmp_path / "flower.log")

        def online(prefix: str) -> bool:
            listed = requests.get(f"{url}workers?json=1", auth=credentials, timeout=10).json()
            return any(
                worker["hostname"].startswith(prefix) and worker["status"]
                for worker in listed["data"]
            )

        # Flower answers HTTP before its event receiver listens: a shard started before that
        # would never be listed. A load worker seen online (its heartbeat events) says it does.
        wait_until(lambda: online("load-test"), timeout_s=20)
        session_id = start_load(
            api, counting_server, concurrent_users=3, duration_minutes=0, **BRISK
        )
        wait_for_status(session_id, {"running"}, timeout_s=15)

        def listed_tasks() -> dict:
            return requests.get(f"{url}api/tasks", auth=credentials, timeout=10).json()

        def shard_started() -> bool:
            return any(
                task["name"] == SHARD_TASK
                and task["args"].startswith(f"({session_id},")
                and task["state"] == "STARTED"
                for task in listed_tasks().values()
            )

        def monitor_tasks_listed() -> int:
            names = Counter(task["name"] for task in listed_tasks().values())
            return sum(names[name] for name in MONITOR_TASKS)

        wait_until(shard_started, timeout_s=15, interval_s=0.5, what="A started shard listed")
        # 20 monitor passes and 20 ticks at the tests' 0.5 s interval, hardly any listed.
        assert_stays(lambda: monitor_tasks_listed() <= 3, RUN_S, "Monitor ticks unlisted",
                     interval_s=1.0)  # fmt: skip

        # The control worker runs the ticks without announcing them, but is still online in
        # Flower: its heartbeats are worker events, not task events.
        wait_until(lambda: online("control-test@"), timeout_s=10)
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id, timeout_s=20)
    finally:
        group.stop_all(grace_s=5)
