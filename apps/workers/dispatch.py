"""Turning a started session into queued work: its shards on `load`, its monitor on `control`."""

from __future__ import annotations

import uuid

from django.conf import settings

from .control import SessionKeys, get_redis, publish_session


def monitor_claim_ms() -> int:
    """How long a monitor chain's claim on a session outlives its last tick."""
    return int(max(10.0, 5 * settings.MONITOR_INTERVAL_S) * 1000)


def dispatch_session(session_id: int, plan: dict) -> None:
    from .tasks import run_shard

    client = get_redis()
    publish_session(client, session_id, plan)
    for shard_index in range(len(plan["shards"])):
        run_shard.apply_async((session_id, shard_index))
    start_monitor(session_id)


def start_monitor(session_id: int) -> bool:
    """Start a monitor chain for the session unless one owns it already.

    The claim is taken before the first tick is queued, so two watchdog runs in a row cannot
    start two chains for one session.
    """
    from .tasks import monitor_session

    chain_id = uuid.uuid4().hex
    claimed = get_redis().set(
        SessionKeys(session_id).monitor, chain_id, nx=True, px=monitor_claim_ms()
    )
    if claimed:
        monitor_session.apply_async((session_id, chain_id))
    return bool(claimed)
