"""Which load workers are alive and what they run, from their presence keys and heartbeats.

Both expire by themselves (presence after a few seconds, heartbeats after HEARTBEAT_TTL_S), so
a killed worker disappears from the list without anyone cleaning up after it.
"""

from __future__ import annotations

import json
import time

from django.conf import settings

from .control import HEARTBEATS_KEY, KEY_PREFIX, decode


def live_workers(client) -> list[dict]:
    """Every live worker with the shards it runs, sorted by hostname."""
    workers: dict[str, dict] = {}
    for key in client.scan_iter(match=f"{KEY_PREFIX}:worker:*", count=500):
        name = decode(key)
        if name.endswith(":draining"):
            continue
        raw = client.get(key)
        if raw is None:
            continue
        info = json.loads(raw)
        workers[info["hostname"]] = {**info, "shards": []}

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
        result.append(worker)
    return result
