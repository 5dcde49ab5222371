"""Drive one shard in this process, against real Redis and real HTTP, without Celery: for
tests of what the engine records, where a worker process would only hide the details."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from contextlib import contextmanager

from django.conf import settings as django_settings

from apps.workers.control import SessionKeys, publish_session, reassign, request_stop
from apps.workers.plan import EndpointPlan, Plan, plan_signing_key
from apps.workers.shard import ShardRunner, ShardSettings
from apps.workers.stats import parse_stats_hash

_session_ids = itertools.count(990_001)


def plan_for(endpoints, **plan) -> Plan:
    """A plan with absolute endpoint URLs: (name, url[, timeout_s[, headers]]) each."""
    return Plan(
        endpoints=tuple(
            EndpointPlan(
                name=name,
                method="GET",
                url=url,
                timeout_s=rest[0] if rest else 5,
                headers=rest[1] if len(rest) > 1 else {},
                weight=1.0,
            )
            for name, url, *rest in endpoints
        ),
        **{"request_interval_min": 0.01, "request_interval_max": 0.02, **plan},
    )


def trusting_settings(**settings) -> ShardSettings:
    """A shard's settings with the signing key and allow-list a worker process gets from
    Django's settings (``tasks.shard_settings``), so it runs the plans this process signs."""
    return ShardSettings(
        **{
            "plan_signing_key": plan_signing_key(django_settings.SECRET_KEY),
            "allowed_target_hosts": tuple(django_settings.ALLOWED_TARGET_HOSTS),
            **settings,
        }
    )


@contextmanager
def shard_in_thread(redis_client, redis_url, plan, users=2, rps=0.0, uvloop=False, **settings):
    """Run shard 0 of a fresh session until the block ends, then stop it and wait.

    Yields the session id; read the results with ``totals``.
    """
    session_id = next(_session_ids)
    publish_session(redis_client, session_id, plan)
    reassign(redis_client, session_id, {0: (users, rps)})
    runner = ShardRunner(
        session_id=session_id,
        shard_index=0,
        generation=1,
        redis_url=redis_url,
        hostname="in-process",
        settings=trusting_settings(**{"flush_interval_s": 0.2, "stop_grace_s": 2, **settings}),
    )
    if uvloop:  # the loop a Celery worker's shard runs on
        import uvloop as uv

        loop = uv.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(runner.run()))
    thread.start()
    try:
        yield session_id, loop
    finally:
        request_stop(redis_client, session_id)
        thread.join(timeout=15)
        loop.close()


def totals(redis_client, session_id):
    """Cumulative figures per endpoint position, as the monitor would read them."""
    return parse_stats_hash(redis_client.hgetall(SessionKeys(session_id).stats))


def events(redis_client, session_id) -> list[dict]:
    """Engine events the shard flushed, oldest first."""
    raw = redis_client.lrange(SessionKeys(session_id).events, 0, -1)
    return [json.loads(item) for item in reversed(raw)]
