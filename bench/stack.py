"""The figures that need the whole service: real Celery workers, the control worker and
beat (stop and start times, rows written per minute), a `web` process with many viewers of
one session's live stream, and a synthetic control-plane load (many shards flushing into one
monitor)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import threading
import time
from pathlib import Path

import aiohttp
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from rest_framework.authtoken.models import Token

from apps.sessions.choices import TERMINAL_STATUSES
from apps.sessions.lifecycle.monitor import monitor_tick
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import emergency_stop, stop_session
from apps.sessions.models import (
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)
from apps.workers import control
from apps.workers.plan import EndpointPlan, Plan
from apps.workers.vocabulary import ShardState
from loadtest_project import celery_app
from loadtest_project.embedded_redis import free_port
from loadtest_project.procfile import (
    ManagedProcess,
    ProcessGroup,
    read_procfile,
    wait_for_celery_nodes,
)


def _wait(condition, timeout_s: float, interval_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval_s)
    raise TimeoutError(f"not within {timeout_s} s")


class Stack:
    """Load workers, the control worker and beat from the Procfile, on this machine; with
    ``web``, the API's `web` process too."""

    def __init__(self, workers: int = 2, web: bool = False) -> None:
        self.workers = workers
        self.web = web

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
        if self.web:
            self._start_web(env, logs)
        return self

    def _start_web(self, env: dict, logs: Path) -> None:
        port = free_port()
        web_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "DEBUG": "False",
                   "ALLOWED_HOSTS": "127.0.0.1",
                   # The viewers are one bench user: its API rate limit must not refuse them.
                   "API_USER_RATE": "100000/minute"}  # fmt: skip
        self.web_process = self.group.start("web", read_procfile()["web"], env=web_env,
                                            log_path=logs / "web.log")  # fmt: skip
        self.web_url = f"http://127.0.0.1:{port}"
        _wait(lambda: _answers(f"{self.web_url}/api/"), 30, 0.1)
        viewer, _ = get_user_model().objects.get_or_create(username="bench-viewer")
        viewer.user_permissions.add(Permission.objects.get(codename="view_loadtestsession"))
        token, _ = Token.objects.get_or_create(user=viewer)
        self.viewer_headers = {"Authorization": f"Token {token.key}"}

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
            start_session(session)
        first = _wait(lambda: counting.stats()["first"], 15)
        time.sleep(2.0)
        if emergency:
            emergency_stop()
        else:
            stop_session(session)
        returned = time.time()
        ended = self._finished(session.pk)
        target = counting.stats()
        return {
            "start_s": first - started,
            "stop_s": max(0.0, target["last"] - returned),
            "ours": ended.total_requests,
            "target": target["count"],
        }

    def saturated_stop_timing(self, counting, emergency: bool) -> dict:
        """A target that holds every answer (50 users on two workers, all waiting), then a
        stop: seconds from the stop call to the session's terminal status, and the failures
        the stop added to the run (the requests it cut: none should be)."""
        session = self._session(counting, users=50)
        counting.reset(delay_ms=10_000)  # no answer comes within the measurement
        with override_settings(LOAD_SHARD_USERS=25):  # two shards: one per worker
            start_session(session)
        _wait(lambda: counting.stats()["count"] >= 50, 30)
        _wait(lambda: LoadTestSession.objects.filter(pk=session.pk, status="running").exists(), 15)
        called = time.monotonic()
        if emergency:
            emergency_stop()
        else:
            stop_session(session)
        ended = _wait(
            lambda: LoadTestSession.objects.filter(
                pk=session.pk, status__in=TERMINAL_STATUSES
            ).first(),
            30,
            0.005,
        )
        ended_s = time.monotonic() - called
        received = counting.stats()["count"]
        counting.reset()  # answers again (the held handlers answer closed connections later)
        return {
            "ended_s": ended_s,
            "failures": ended.total_failures,
            "ours": ended.total_requests,
            "target": received,
        }

    def viewers_timing(self, counting, viewers: int, seconds: float) -> dict:
        """One session at a steady rate on two workers watched by ``viewers`` open streams
        on the `web` process (and one probe stream): how stale the figures a viewer receives
        are (statistics lag), the stop time, the web process's RSS and Redis's connections."""
        session = self._session(counting, users=20, think=(0.05, 0.1))
        counting.reset()
        redis_client = control.get_redis()
        with override_settings(LOAD_SHARD_USERS=10):  # two shards: one per worker
            start_session(session)
        _wait(lambda: counting.stats()["count"], 15)
        connections_before = redis_client.info("clients")["connected_clients"]
        url = f"{self.web_url}/api/sessions/{session.pk}/events/"
        with Viewers(url, self.viewer_headers, viewers) as watching:
            _wait(lambda: watching.connected >= viewers, 60, 0.1)
            time.sleep(1.0)
            redis_connections = redis_client.info("clients")["connected_clients"]
            lags = _probe_lag(url, self.viewer_headers, counting, seconds)
            web_rss = _group_rss_bytes(self.web_process)
            snapshots = watching.fewest_received()
            stop_session(session)
            returned = time.time()
            ended = self._finished(session.pk)
        target = counting.stats()
        return {
            "lag_s": statistics.median(lags),
            "stop_s": max(0.0, target["last"] - returned),
            "web_rss": web_rss,
            "redis_connections_per_viewer": (redis_connections - connections_before)
            / max(viewers, 1),
            "fewest_snapshots": snapshots,
            "ours": ended.total_requests,
            "target": target["count"],
        }

    def rows_per_minute(self, counting, users: int, think, seconds: float) -> dict:
        session = self._session(counting, users=users, think=think, minutes=seconds / 60)
        counting.reset()
        start_session(session)
        ended = self._finished(session.pk, timeout_s=seconds + 60)
        rows = sum(
            model.objects.filter(session=ended).count()
            for model in (TimeSeriesPoint, EndpointStats, SessionEvent, ErrorSample)
        )
        minutes = ended.duration_s() / 60
        return {
            "rows_per_min": rows / minutes,
            "rps": ended.total_requests / ended.duration_s(),
            "ours": ended.total_requests,
            "target": counting.stats()["count"],
        }


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
        return True
    except requests.RequestException:
        return False


def _group_rss_bytes(process: ManagedProcess) -> int:
    """The resident memory of every process in ``process``'s group (the Procfile line runs
    under ``sh``): what the `web` line costs the machine."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != process.pid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue  # exited meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _probe_lag(url: str, headers: dict, counting, seconds: float) -> list[float]:
    """For each snapshot one more viewer receives during ``seconds``: how far its
    ``total_requests`` trails what the target had received by then, in seconds at the
    target's current rate (shard flush, monitor tick and fan-out together)."""
    lags: list[float] = []
    previous: tuple[float, int] | None = None
    deadline = time.monotonic() + seconds
    with requests.get(url, headers=headers, stream=True, timeout=(5, 30)) as response:
        response.raise_for_status()
        data = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
            elif not line and data is not None:
                now, received = time.monotonic(), counting.stats()["count"]
                if previous is not None and now > previous[0]:
                    rate = (received - previous[1]) / (now - previous[0])
                    if rate > 0:
                        lags.append(max(0.0, received - data["total_requests"]) / rate)
                previous, data = (now, received), None
                if now > deadline:
                    break
    return lags


class Viewers:
    """``count`` open streams of one session, each read as it comes (as dashboards would),
    from a thread and event loop of their own, counting the snapshots each receives."""

    def __init__(self, url: str, headers: dict, count: int) -> None:
        self.url, self.headers, self.count = url, headers, count
        self.received = [0] * count
        self.connected = 0

    def __enter__(self) -> Viewers:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._watch(),), daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        self._loop.close()

    def fewest_received(self) -> int:
        return min(self.received, default=0)

    async def _watch(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            readers = [asyncio.create_task(self._read(http, n)) for n in range(self.count)]
            await self._stop.wait()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read(self, http: aiohttp.ClientSession, number: int) -> None:
        async with http.get(self.url, headers=self.headers) as response:
            response.raise_for_status()
            self.connected += 1
            async for line in response.content:
                if line.startswith(b"event: stats"):
                    self.received[number] += 1


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
