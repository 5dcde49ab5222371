"""The figures that need the whole service: real Celery workers, the control worker and
beat (stop and start times, rows written per minute), and a synthetic control-plane load
(many shards flushing into one monitor)."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from apps.sessions import services
from apps.sessions.choices import TERMINAL_STATUSES
from apps.sessions.models import (
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)
from apps.sessions.monitor import monitor_tick
from apps.workers import control
from apps.workers.plan import EndpointPlan, Plan
from apps.workers.vocabulary import ShardState
from loadtest_project import celery_app
from loadtest_project.procfile import ProcessGroup, read_procfile, wait_for_celery_nodes


def _wait(condition, timeout_s: float, interval_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval_s)
    raise TimeoutError(f"not within {timeout_s} s")


class Stack:
    """Load workers, the control worker and beat from the Procfile, on this machine."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def __enter__(self) -> Stack:
        self.group = ProcessGroup()
        procfile = read_procfile()
        env = {"WORKER_CONCURRENCY": "2", "LOG_LEVEL": "WARNING"}
        logs = Path(settings.DATA_DIR)  # the bench's temporary folder
        hosts = [f"control@{socket.gethostname()}"]
        self.group.start("control", procfile["control"], env=env, log_path=logs / "control.log")
        self.group.start("beat", procfile["beat"], env=env, log_path=logs / "beat.log")
        for number in range(1, self.workers + 1):
            name = f"bench-load{number}"
            self.group.start(name, procfile["worker"], env={**env, "WORKER_NAME": name},
                             log_path=logs / f"{name}.log")  # fmt: skip
            hosts.append(f"{name}@{socket.gethostname()}")
        missing = wait_for_celery_nodes(celery_app, hosts, 60)
        if missing:
            raise RuntimeError(f"Celery workers did not answer: {sorted(missing)}")
        target = Target.objects.create(name=f"bench-{time.time()}", base_url="http://127.0.0.1")
        self.target = target
        return self

    def __exit__(self, *exc) -> None:
        self.group.stop_all(grace_s=15)

    def _session(self, counting, users: int, think=(0.0, 0.0), minutes: float = 0):
        self.target.base_url = counting.url.rstrip("/")
        self.target.save()
        if not self.target.endpoints.exists():
            Endpoint.objects.create(target=self.target, name="root", url="/")
        return LoadTestSession.objects.create(
            session_name="bench", target=self.target, concurrent_users=users,
            request_interval_min=think[0], request_interval_max=think[1],
            duration_minutes=minutes, max_errors_per_minute=0,
        )  # fmt: skip

    @staticmethod
    def _finished(session_id: int, timeout_s: float = 60) -> LoadTestSession:
        return _wait(
            lambda: LoadTestSession.objects.filter(
                pk=session_id, status__in=TERMINAL_STATUSES
            ).first(),
            timeout_s,
            0.1,
        )

    def stop_timing(self, counting, emergency: bool) -> dict:
        """Full rate on two workers, then stop: seconds from the stop call's return to the
        last request the target received, and from the start call to the first one."""
        session = self._session(counting, users=50)
        counting.reset()
        with override_settings(LOAD_SHARD_USERS=25):  # two shards: one per worker
            started = time.time()
            services.start_session(session)
        first = _wait(lambda: counting.stats()["first"], 15)
        time.sleep(2.0)
        if emergency:
            services.emergency_stop()
        else:
            services.stop_session(session)
        returned = time.time()
        ended = self._finished(session.pk)
        target = counting.stats()
        return {
            "start_s": first - started,
            "stop_s": max(0.0, target["last"] - returned),
            "ours": ended.total_requests,
            "target": target["count"],
        }

    def rows_per_minute(self, counting, users: int, think, seconds: float) -> dict:
        session = self._session(counting, users=users, think=think, minutes=seconds / 60)
        counting.reset()
        services.start_session(session)
        ended = self._finished(session.pk, timeout_s=seconds + 60)
        rows = sum(
            model.objects.filter(session=ended).count()
            for model in (TimeSeriesPoint, EndpointStats, SessionEvent, ErrorSample)
        )
        minutes = ended.elapsed_seconds() / 60
        return {
            "rows_per_min": rows / minutes,
            "rps": ended.total_requests / ended.elapsed_seconds(),
            "ours": ended.total_requests,
            "target": counting.stats()["count"],
        }


def monitor_capacity(shard_count: int, rounds: int = 3) -> dict:
    """Many shards flushing once a second into one session, and one monitor tick after each
    second of flushes: the tick's database queries and duration."""
    target = Target.objects.create(name=f"synthetic-{shard_count}", base_url="http://127.0.0.1")
    endpoints = tuple(EndpointPlan(name=f"e{i}", method="GET", url=f"http://127.0.0.1/{i}",
                                   timeout_s=30, weight=1.0) for i in range(3))  # fmt: skip
    plan = Plan(endpoints=endpoints, request_interval_min=0, request_interval_max=0)
    session = LoadTestSession.objects.create(
        session_name="synthetic", target=target, status="running", plan=plan.to_json(),
        concurrent_users=shard_count, duration_minutes=0, max_errors_per_minute=0,
    )  # fmt: skip
    client = control.get_redis()
    keys = control.SessionKeys(session.pk)
    control.publish_session(client, session.pk, plan)
    control.reassign(client, session.pk, {index: (1, 0.0) for index in range(shard_count)})
    script = client.register_script(control.FLUSH_SCRIPT)
    rng = random.Random(1)
    queries, durations = [], []
    try:
        for _ in range(rounds):
            second = int(time.time())
            with client.pipeline(transaction=False) as pipe:
                for index in range(shard_count):
                    script(
                        keys=control.flush_script_keys(keys, index),
                        args=_synthetic_flush(index, second, rng, session.pk),
                        client=pipe,
                    )
                pipe.execute()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                monitor_tick(session.pk)
                durations.append(time.perf_counter() - started)
            queries.append(len(captured))
            time.sleep(max(0.0, second + 1 - time.time()))
    finally:
        control.forget_session(client, session.pk)
        session.delete()
        target.delete()
    return {
        "queries": max(queries),
        "tick_s": max(durations),
        "lag_s": settings.MONITOR_INTERVAL_S + max(durations),
    }


def _synthetic_flush(index: int, second: int, rng: random.Random, session_id: int) -> list:
    increments: dict[str, int] = {}
    for endpoint in range(3):
        increments[f"{endpoint}:n"] = 20
        increments[f"{endpoint}:f:http_5xx"] = 1
        increments[f"{endpoint}:sum"] = 20 * 5000
        for _ in range(5):
            bucket = f"{endpoint}:h:{rng.randrange(300, 1200)}"
            increments[bucket] = increments.get(bucket, 0) + 4
    return control.flush_script_args(
        shard_index=index,
        generation=1,
        new_state=ShardState.RUNNING,
        heartbeat={"session": session_id, "shard": index, "generation": 1,
                   "hostname": "synthetic", "users": 1, "rate": 20.0, "at": time.time()},
        events=[],
        increments=increments,
        maxima={f"{e}:max": 9000 for e in range(3)},
        minima={f"{e}:min": 1000 for e in range(3)},
        series={f"{second}:n": 60, f"{second}:f": 3, f"{second}:sum": 300000},
        heartbeat_ttl_s=settings.HEARTBEAT_TTL_S,
        session_id=session_id,
    )  # fmt: skip
