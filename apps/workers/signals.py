"""Worker process hooks: a warm shutdown tells this worker's shards to stop and flush now.

Without this, a worker asked to stop (Ctrl-C, `docker compose stop`, scaling down) would wait
for hour-long shards to end by themselves, and be killed with their last statistics unflushed.
"""

import logging

from celery.signals import celeryd_after_setup, worker_shutting_down

from .control import get_redis, worker_draining_key

logger = logging.getLogger(__name__)


@worker_shutting_down.connect
def tell_shards_to_drain(sender: str | None = None, **kwargs) -> None:
    if not sender:
        return
    try:
        get_redis().set(worker_draining_key(sender), "1", ex=120)
    except Exception as exc:  # a shutdown must go on even if Redis is gone
        logger.warning("Could not mark worker %s as draining: %s", sender, exc)


@celeryd_after_setup.connect
def clear_draining_mark(sender: str | None = None, **kwargs) -> None:
    """A worker restarted under the same name must not inherit its predecessor's drain."""
    if not sender:
        return
    try:
        get_redis().delete(worker_draining_key(sender))
    except Exception as exc:
        logger.warning("Could not clear the draining mark of %s: %s", sender, exc)
