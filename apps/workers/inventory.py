"""Which workers are alive and their role, what they run, and how many shards they can take now.

The control worker announces itself like the load workers, but runs no load: every count
of workers people read says which role it counts (``worker_summary``).

Presence keys and heartbeats both expire by themselves (presence after a few seconds,
heartbeats after HEARTBEAT_TTL_S), so a killed worker disappears from the list without anyone
cleaning up after it. A presence carries the worker's pool size (``concurrency``) and its busy
processes (``busy``), refreshed every few seconds: the free capacity read from them is up to
that old.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from .control import HEARTBEATS_KEY, KEY_PREFIX, decode

# The Redis list in which kombu keeps the shards' queue's waiting messages.
LOAD_QUEUE = settings.CELERY_TASK_ROUTES["apps.workers.tasks.run_shard"]["queue"]


def counted(number: int, singular: str, plural: str) -> str:
    """``1 shard``, ``2 shards``: numbers in the sentences operators read."""
    return f"{number} {singular if number == 1 else plural}"


@dataclass(frozen=True)
class LoadCapacity:
    """What the live workers consuming the load queue can take on now."""

    workers: int  # live workers consuming the load queue
    processes: int  # their pool processes together (WORKER_CONCURRENCY each)
    free: int  # processes neither running a shard nor holding one about to start
    queued: int  # shard messages waiting in the load queue

    @property
    def free_for_new_shards(self) -> int:
        """Free processes left once the shards already waiting in the queue have theirs."""
        return max(self.free - self.queued, 0)

    def shortage(self) -> str:
        """Why shards wait, in words that say what to add."""
        if not self.workers:
            return f"no live load worker consumes the {LOAD_QUEUE!r} queue"
        return (
            f"live load workers (the {LOAD_QUEUE!r} queue) have "
            f"{counted(self.free, 'free process', 'free processes')} (WORKER_CONCURRENCY)"
        )

    def shortfall_warning(self, shards: int) -> str | None:
        """For whoever starts ``shards`` more shards: None if they can all start now."""
        free = self.free_for_new_shards
        if free >= shards:
            return None
        ahead = f", {counted(self.queued, 'shard', 'shards')} already queued" if self.queued else ""
        return (
            f"This session needs {counted(shards, 'shard', 'shards')}, but {self.shortage()}"
            f"{ahead}: {shards - free} will wait for a free process, and the session fails if "
            f"none has started within SHARD_START_TIMEOUT_S ({settings.SHARD_START_TIMEOUT_S:g}"
            " s). Add load workers, raise WORKER_CONCURRENCY, or run fewer sessions at once."
        )


def _presences(client: redis.Redis) -> dict[str, dict]:
    """Every live worker's presence (control workers too), by hostname."""
    workers: dict[str, dict] = {}
    for key in client.scan_iter(match=f"{KEY_PREFIX}:worker:*", count=500):
        name = decode(key)
        if name.endswith(":draining"):
            continue
        raw = client.get(key)
        if raw is None:
            continue
        info = json.loads(raw)
        workers[info["hostname"]] = info
    return workers


def load_capacity(client: redis.Redis) -> LoadCapacity:
    load_workers = [info for info in _presences(client).values()
                    if LOAD_QUEUE in info.get("queues", ())]  # fmt: skip
    processes = sum(info.get("concurrency") or 0 for info in load_workers)
    free = sum(
        max((info.get("concurrency") or 0) - info.get("busy", 0), 0) for info in load_workers
    )
    return LoadCapacity(
        workers=len(load_workers), processes=processes, free=free, queued=client.llen(LOAD_QUEUE)
    )


LOAD_ROLE = "load"  # consumes the load queue: runs shards
CONTROL_ROLE = "control"  # the monitor, schedules, webhooks: never a shard


def worker_role(info: dict) -> str:
    """``load`` for a worker that consumes the load queue (or runs shards), else ``control``."""
    if LOAD_QUEUE in info.get("queues", ()) or info.get("shards"):
        return LOAD_ROLE
    return CONTROL_ROLE


def worker_summary(workers: list[dict]) -> dict[str, int]:
    """The live workers counted by role, as the overview and the workers page say it: "Load
    workers: 1 (2 processes) · control: 1". Processes are the load workers' pool sizes."""
    load = [worker for worker in workers if worker["role"] == LOAD_ROLE]
    return {
        "load_workers": len(load),
        "load_processes": sum(worker.get("concurrency") or 0 for worker in load),
        "control_workers": len(workers) - len(load),
    }


def live_workers(client: redis.Redis) -> list[dict]:
    """Every live worker with the shards it runs and its role (``worker_role``), sorted by
    hostname."""
    workers = {hostname: {**info, "shards": []} for hostname, info in _presences(client).items()}

    now = time.time()
    stale = []
    for field, raw in client.hgetall(HEARTBEATS_KEY).items():
        beat = json.loads(raw)
        if now - beat["at"] > settings.HEARTBEAT_TTL_S:
            stale.append(field)
            continue
        worker = workers.setdefault(
            beat["hostname"], {"hostname": beat["hostname"], "pid": None, "shards": []}
        )
        worker["shards"].append(
            {
                "session": beat["session"],
                "shard": beat["shard"],
                "generation": beat["generation"],
                "users": beat["users"],
                "model": beat["model"],
                "rate": beat["rate"],
                "target_rps": beat["target_rps"],
                "breakers_open": beat["breakers_open"],
                "last_heartbeat": beat["at"],
            }
        )
    if stale:
        client.hdel(HEARTBEATS_KEY, *stale)  # shards of workers that died

    result = []
    for hostname in sorted(workers):
        worker = workers[hostname]
        worker["shards"].sort(key=lambda shard: (shard["session"], shard["shard"]))
        worker["users"] = sum(shard["users"] for shard in worker["shards"])
        worker["rate"] = round(sum(shard["rate"] for shard in worker["shards"]), 2)
        worker["role"] = worker_role(worker)
        result.append(worker)
    return result
