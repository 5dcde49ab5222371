"""Worker process hooks: presence for GET /api/workers/ and capacity, draining at shutdown.

A worker's presence carries its pool size and how many of its processes are busy, so that
the start call and the monitor can tell a shard that waits for a free process from one that
is about to start.

A warm shutdown tells this worker's shards to stop and flush now. Without it, a worker asked to
stop (Ctrl-C, `docker compose stop`, scaling down) would wait for hour-long shards to end by
themselves, and be killed with their last statistics unflushed; with it, the monitor
re-dispatches them to the remaining workers within a tick.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from celery.signals import celeryd_after_setup, worker_ready, worker_shutting_down
from celery.worker import state as worker_state

from .control import get_redis, worker_draining_key, worker_presence_key

if TYPE_CHECKING:  # for annotations only: web processes need not load the worker's modules
    from celery.worker.consumer import Consumer

PRESENCE_INTERVAL_S = 2.0
PRESENCE_TTL_S = 6
# A draining mark outlives the shards' stop (a poll, then STOP_GRACE_S and a final flush) and
# then expires by itself, so a worker killed mid-shutdown leaves nothing behind for long.
DRAINING_MARK_TTL_S = 120

logger = logging.getLogger(__name__)


_presence_stop = threading.Event()


@worker_ready.connect
def announce_presence(sender: Consumer, **kwargs: object) -> None:
    """Refresh ``lt:worker:<hostname>`` every few seconds from a thread of the main process."""
    controller = getattr(sender, "controller", None)
    hostname = sender.hostname
    info = {
        "hostname": hostname,
        "pid": os.getpid(),
        "concurrency": getattr(controller, "concurrency", None),
        "queues": sorted(sender.app.amqp.queues.consume_from or sender.app.amqp.queues),
        "started_at": time.time(),
    }

    def refresh() -> None:
        while not _presence_stop.is_set():
            try:
                info["at"] = time.time()
                info["busy"] = busy_processes()
                get_redis().set(worker_presence_key(hostname), json.dumps(info), ex=PRESENCE_TTL_S)
            except Exception as exc:
                logger.warning("Could not refresh worker presence: %s", exc)
            _presence_stop.wait(PRESENCE_INTERVAL_S)

    threading.Thread(target=refresh, name="presence", daemon=True).start()


def busy_processes() -> int:
    """Tasks this worker has taken and not finished: running, or handed to a pool process.
    With prefetching off (see settings), each holds one process."""
    return len(worker_state.reserved_requests)


@worker_shutting_down.connect
def tell_shards_to_drain(sender: str | None = None, **kwargs: object) -> None:
    if not sender:
        return
    _presence_stop.set()
    try:
        client = get_redis()
        client.set(worker_draining_key(sender), "1", ex=DRAINING_MARK_TTL_S)
        client.delete(worker_presence_key(sender))
    except Exception as exc:  # a shutdown must go on even if Redis is gone
        logger.warning("Could not mark worker %s as draining: %s", sender, exc)


@celeryd_after_setup.connect
def clear_draining_mark(sender: str | None = None, **kwargs: object) -> None:
    """A worker restarted under the same name must not inherit its predecessor's drain."""
    if not sender:
        return
    try:
        get_redis().delete(worker_draining_key(sender))
    except Exception as exc:
        logger.warning("Could not clear the draining mark of %s: %s", sender, exc)
