"""The engine's Celery task: ``run_shard`` unpacks ids and runs a shard (``shard.py``).

It goes to the `load` queue (see CELERY_TASK_ROUTES); the control plane's tasks (the
monitor's) live with the control plane and go to `control`.
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Task, shared_task
from django.conf import settings

from .plan import plan_signing_key
from .shard import ShardRunner, ShardSettings

T = TypeVar("T")

logger = logging.getLogger(__name__)


def shard_settings() -> ShardSettings:
    return ShardSettings(
        flush_interval_s=settings.STATS_FLUSH_INTERVAL_S,
        control_poll_interval_s=settings.CONTROL_POLL_INTERVAL_S,
        stop_grace_s=settings.STOP_GRACE_S,
        heartbeat_ttl_s=settings.HEARTBEAT_TTL_S,
        breaker_failures=settings.CIRCUIT_BREAKER_FAILURES,
        breaker_cooldown_s=settings.CIRCUIT_BREAKER_COOLDOWN_S,
        breaker_max_cooldown_s=settings.CIRCUIT_BREAKER_MAX_COOLDOWN_S,
        backoff_base_s=settings.BACKOFF_BASE_S,
        backoff_max_s=settings.BACKOFF_MAX_S,
        max_rss_mb=settings.WORKER_MAX_RSS_MB,
        max_cpu_percent=settings.WORKER_MAX_CPU_PERCENT,
        check_body_limit=settings.CHECK_BODY_LIMIT,
        plan_signing_key=plan_signing_key(settings.SECRET_KEY),
        allowed_target_hosts=tuple(settings.ALLOWED_TARGET_HOSTS),
    )


@shared_task(bind=True, name="apps.workers.tasks.run_shard")
def run_shard(self: Task, session_id: int, shard_index: int, generation: int = 1) -> str:
    """Send a shard's load until its session stops; hours-long by design. Returns why it
    stopped (a ``StopReason``'s value: Flower shows it as the task's result)."""
    runner = ShardRunner(
        session_id=session_id,
        shard_index=shard_index,
        generation=generation,
        redis_url=settings.REDIS_URL,
        hostname=self.request.hostname or "unknown",
        settings=shard_settings(),
    )
    return run_event_loop(runner.run()).value


def run_event_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """uvloop where it is installed (Linux, macOS): the shard's loop then runs at libuv speed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
