"""Our load path in one process: a real shard (the engine Celery runs), pinned to one core.

The orchestrator runs this as a subprocess so that the shard has a core and an event loop of
its own, exactly as in a load worker's pool process. It writes the session's plan and
assignment to Redis as a start would, runs the shard for the given seconds, and prints
the shard's own figures, read back from Redis as the monitor would, as one JSON line.

    python -m bench.shard_process '{"url": ..., "users": 50, "seconds": 10, ...}'
"""

import json
import os
import sys
import time
from urllib.parse import urlsplit


def main(spec: dict) -> dict:
    import django

    django.setup()
    import psutil
    import redis
    from django.conf import settings

    from apps.workers.control import SessionKeys, publish_session, reassign
    from apps.workers.plan import EndpointPlan, Plan, plan_signing_key
    from apps.workers.shard import ShardRunner, ShardSettings
    from apps.workers.stats import parse_stats_hash
    from apps.workers.tasks import run_event_loop

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    session_id = spec.get("session_id") or 700_000 + os.getpid()
    plan = Plan(
        endpoints=(EndpointPlan(name="root", method=spec.get("method", "GET"), url=spec["url"],
                                timeout_s=30, weight=1.0, headers=spec.get("headers", {}),
                                body=spec.get("body", ""),
                                checks=tuple(spec.get("checks", ()))),),
        request_interval_min=spec.get("think_min", 0.0),
        request_interval_max=spec.get("think_max", 0.0),
        target_rps=spec.get("rps"),
        duration_s=spec["seconds"],
        ramp_up_s=spec.get("ramp_s", 0.0),
        session_header=spec.get("session_header", ""),
        traceparent=spec.get("traceparent", False),
    )  # fmt: skip
    publish_session(client, session_id, plan)
    reassign(client, session_id, {0: (spec["users"], float(spec.get("rps") or 0.0))})
    runner = ShardRunner(session_id=session_id, shard_index=0, generation=1,
                         redis_url=os.environ["REDIS_URL"], hostname="bench",
                         settings=ShardSettings(
                             max_rss_mb=0,
                             plan_signing_key=plan_signing_key(settings.SECRET_KEY),
                             # The bench chose its target: the shard may send there.
                             allowed_target_hosts=(urlsplit(spec["url"]).netloc,),
                         ))  # fmt: skip

    process = psutil.Process()
    rss_samples = []
    checkpoints = iter(sorted(spec.get("rss_at_s", [])))

    async def run_with_samples():
        import asyncio

        started = time.monotonic()
        task = asyncio.create_task(runner.run())
        next_at = next(checkpoints, None)
        while not task.done():
            await asyncio.sleep(0.5)
            if next_at is not None and time.monotonic() - started >= next_at:
                rss_samples.append([next_at, process.memory_info().rss])
                next_at = next(checkpoints, None)
        return await task

    rss_at_start = process.memory_info().rss  # Django, the engine and Redis: before any user
    started, cpu_started = time.monotonic(), time.process_time()
    run_event_loop(run_with_samples())
    elapsed, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
    totals = parse_stats_hash(client.hgetall(SessionKeys(session_id).stats)).get(0)
    client.delete(*SessionKeys(session_id).all([0]))
    percentiles = totals.percentiles_ms() if totals else {}
    return {
        "requests": totals.requests if totals else 0,
        "failures": totals.failures if totals else 0,
        "not_sent": totals.not_sent if totals else {},
        "p50_ms": percentiles.get(0.5),
        "p99_ms": percentiles.get(0.99),
        "mean_ms": totals.mean_ms() if totals else None,
        "failures_by_class": totals.failures_by_class if totals else {},
        "connections_opened": getattr(getattr(runner, "http", None), "connections_opened", None),
        "cpu_percent": cpu_s / elapsed * 100 if elapsed else None,
        "elapsed_s": elapsed,
        # CPU seconds the run took: per request, a cost that a busy neighbour on the same
        # core does not inflate the way it cuts the rate.
        "cpu_s": cpu_s,
        "rss_samples": rss_samples,
        "rss_at_start": rss_at_start,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
