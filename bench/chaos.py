"""Figure l, the chaos soak: one open-model session at a steady rate while, once a fault
interval, one process of the service dies (a load worker, Redis without persistence, the
control worker, beat, web) and is replaced at once. Per fault: how long the target's
observed rate stayed below 90% of the session's rate; at the end: the session's status and
the requests it counted against those the target received, beside the docs' bound for
what a worker SIGKILL and a Redis loss may lose."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.test.utils import override_settings

from apps.sessions.lifecycle.start import start_session
from apps.workers.control import HEARTBEATS_KEY
from loadtest_project import celery_app
from loadtest_project.embedded_redis import EmbeddedRedis
from loadtest_project.procfile import ManagedProcess, wait_for_celery_nodes

from .stack import Stack, _answers, _wait

RATE = 50.0  # the session's target_rps
SHARD_USERS = 10  # with 20 users in flight at most: two shards, one per load worker
FAULTS = ("load worker", "redis", "control", "beat", "web")
SAMPLE_S = 0.5  # how often the target's count is read
WINDOW_S = 1.0  # the observed rate is the count's growth over this window
DIP_GRACE_S = 5.0  # a fault that has not cut the rate by then did not cut it at all
BACK_FOR_S = 1.0  # the rate must stay at 90% this long to count as back


@dataclass
class Fault:
    kind: str
    at_s: float  # since the session started
    replaced_s: float | None = None  # kill → the replacement answers (ping, HTTP, PING)
    back_s: float | None = None  # kill → the rate back at 90%; 0 if it never fell
    lowest_rps: float = 0.0
    detail: str = ""


@dataclass
class Sampler:
    """The counting target's count every SAMPLE_S, from a thread of its own."""

    counting: object
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __enter__(self) -> Sampler:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # a missed sample only widens one window
                self.samples.append((time.monotonic(), self.counting.stats()["count"]))
            next_at += SAMPLE_S
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def rates(self, start: float, end: float) -> list[tuple[float, float]]:
        """(time, requests/s over the preceding WINDOW_S) for samples in [start, end)."""
        samples = list(self.samples)
        rates = []
        for index, (at, count) in enumerate(samples):
            if not start <= at < end:
                continue
            earlier = next((s for s in reversed(samples[:index]) if at - s[0] >= WINDOW_S), None)
            if earlier is not None:
                rates.append((at, (count - earlier[1]) / (at - earlier[0])))
        return rates


def recovery(rates: list[tuple[float, float]], fault_at: float, rate: float) -> tuple:
    """Seconds from ``fault_at`` until the rate was back at 90% of ``rate`` and stayed there
    BACK_FOR_S (0 if it never fell below within DIP_GRACE_S; None if it never came back),
    and the lowest rate seen."""
    floor = 0.9 * rate
    lowest = min((r for _, r in rates), default=0.0)
    dip = next((i for i, (at, r) in enumerate(rates) if r < floor), None)
    if dip is None or rates[dip][0] - fault_at > DIP_GRACE_S:
        return 0.0, lowest
    for index in range(dip, len(rates)):
        at = rates[index][0]
        held = [r for t, r in rates[index:] if t - at <= BACK_FOR_S]
        if held and min(held) >= floor and rates[-1][0] - at >= BACK_FOR_S:
            return at - fault_at, lowest
    return None, lowest


class ChaosSoak:
    """Runs the soak on a Stack of two load workers, control, beat and web."""

    def __init__(self, stack: Stack, counting, embedded_redis: EmbeddedRedis) -> None:
        self.stack = stack
        self.counting = counting
        self.redis = embedded_redis
        self.spare_workers = 0

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.stack.group.processes if p.name == name)

    def replace(self, name: str) -> ManagedProcess:
        """SIGKILL ``name``'s whole process group and start it again in its place."""
        process = self.process(name)
        process.kill_group()
        return self.stack.group.restart(process)

    def inject(self, kind: str, session_id: int) -> str:
        """The fault, its replacement started; returns what was hit. Waits until the
        replacement answers."""
        if kind == "load worker":
            beats = [json.loads(raw) for raw in _redis(self.redis).hvals(HEARTBEATS_KEY)]
            hosts = sorted(b["hostname"] for b in beats if b["session"] == session_id)
            victim = hosts[0].split("@")[0] if hosts else "bench-load1"
            self.replace(victim)
            _celery_answers(f"{victim}@{socket.gethostname()}")
            return f"{victim}, which ran a shard" if hosts else victim
        if kind == "redis":
            self.redis.restart_empty()
            return "empty, no persistence"
        if kind == "control":
            self.replace("control")
            _celery_answers(f"control@{socket.gethostname()}")
            return ""
        if kind == "beat":
            self.replace("beat")
            return ""
        self.stack.web_process = self.replace("web")
        _wait(lambda: _answers(f"{self.stack.web_url}/api/"), 60, 0.1)
        return ""

    def run(self, soak_s: float, every_s: float, faults: int) -> dict:
        session = self.stack._session(self.counting, users=20, minutes=soak_s / 60)
        session.target_rps = RATE
        session.save(update_fields=["target_rps"])
        self.counting.reset()
        with Sampler(self.counting) as sampler, override_settings(LOAD_SHARD_USERS=SHARD_USERS):
            started = time.monotonic()
            start_session(session)
            done: list[Fault] = []
            for number in range(faults):
                fault_at = started + every_s * (number + 1)
                time.sleep(max(0.0, fault_at - time.monotonic()))
                kind = FAULTS[number % len(FAULTS)]
                killed = time.monotonic()
                detail = self.inject(kind, session.pk)
                # Beat answers no ping: its replacement is started, not waited for.
                replaced = None if kind == "beat" else time.monotonic() - killed
                done.append(Fault(kind, killed - started, replaced, detail=detail))
            ended = self.stack._finished(session.pk, timeout_s=soak_s + 120)
            time.sleep(2 * SAMPLE_S)  # the last samples
        for index, fault in enumerate(done):
            at = started + fault.at_s
            # Up to the next fault, or the session's last second: its end is no fault's doing.
            until = started + (done[index + 1].at_s if index + 1 < len(done) else soak_s - 1)
            fault.back_s, fault.lowest_rps = recovery(sampler.rates(at, until), at, RATE)
        worker_kills = sum(1 for f in done if f.kind == "load worker")
        redis_losses = sum(1 for f in done if f.kind == "redis")
        # docs/operations/self-healing.md: a worker SIGKILL loses at most one flush interval of its
        # shard's requests (here: of the whole session's, two shards: generous); a Redis
        # loss at most MONITOR_INTERVAL_S + HEARTBEAT_TTL_S + STOP_GRACE_S of traffic.
        bound = RATE * (
            worker_kills * settings.STATS_FLUSH_INTERVAL_S
            + redis_losses
            * (settings.MONITOR_INTERVAL_S + settings.HEARTBEAT_TTL_S + settings.STOP_GRACE_S)
        )
        return {
            "faults": done,
            "status": ended.status,
            "end_reason": ended.end_reason,
            "ours": ended.total_requests,
            "target": self.counting.stats()["count"],
            "bound": bound,
            "seconds": ended.duration_s(),
        }


def _redis(embedded: EmbeddedRedis) -> redis.Redis:
    """A fresh client each time: the server may have been restarted since the last one."""
    return redis.Redis.from_url(embedded.url, socket_timeout=5)


def _celery_answers(hostname: str) -> None:
    if wait_for_celery_nodes(celery_app, [hostname], 60):
        raise RuntimeError(f"{hostname} did not come back")
