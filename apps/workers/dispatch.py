"""Turning a session into queued work: its shards, on the `load` queue.

Every change of who runs what goes through ``control.reassign``: the first dispatch, a live
change of the user count, the re-dispatch of a shard whose worker was lost, and the rebuild of
a session whose Redis state was lost. It keeps each
shard's generation, so a superseded shard can tell it must stop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.conf import settings

from .control import (
    get_redis,
    mark_dispatched,
    publish_session,
    read_assignments,
    reassign,
    republish_session,
)
from .plan import Plan
from .tasks import run_shard


def shard_sizes(users: int, users_per_shard: int) -> list[int]:
    """Split users into the fewest shards of at most ``users_per_shard``, as evenly as possible."""
    shard_count = max(1, math.ceil(users / max(users_per_shard, 1)))
    base, extra = divmod(users, shard_count)
    return [base + 1] * extra + [base] * (shard_count - extra)


def shard_shares(users: int, target_rps: float | None) -> list[tuple[int, float]]:
    """(users, rps) per shard; in the open model the rate is shared in proportion to users."""
    sizes = shard_sizes(users, settings.LOAD_SHARD_USERS)
    rate = float(target_rps or 0.0)
    return [(size, rate * size / users if users else 0.0) for size in sizes]


def _send_shards(session_id: int, shards: list[tuple[int, int]]) -> None:
    for shard_index, generation in shards:
        run_shard.apply_async((session_id, shard_index, generation))


def dispatch_session(session_id: int, plan: Plan, users: int, target_rps: float | None) -> None:
    client = get_redis()
    mark_dispatched(client, session_id)
    publish_session(client, session_id, plan)
    shares = dict(enumerate(shard_shares(users, target_rps)))
    _send_shards(session_id, reassign(client, session_id, shares))


def resize_session(session_id: int, users: int, target_rps: float | None) -> list[int]:
    """Spread a new user count (and rate) over shards; returns the shard indices dispatched.

    Existing shards keep their index and generation and adjust within a poll; shards no
    longer needed get 0 users and retire; missing ones are queued.
    """
    client = get_redis()
    current = read_assignments(client, session_id)
    wanted = shard_shares(users, target_rps)
    shares = dict(enumerate(wanted))
    for index in current:
        shares.setdefault(index, (0, 0.0))
    dispatched = reassign(client, session_id, shares)
    _send_shards(session_id, dispatched)
    return [index for index, _ in dispatched]


def redispatch_shards(session_id: int, shard_indices: list[int]) -> list[tuple[int, int]]:
    """Queue the next generation of shards whose worker was lost or shut down."""
    client = get_redis()
    current = read_assignments(client, session_id)
    shares = {
        index: (current[index].users, current[index].rps)
        for index in shard_indices
        if index in current and current[index].users > 0
    }
    dispatched = reassign(client, session_id, shares) if shares else []
    _send_shards(session_id, dispatched)
    return dispatched


def rebuild_session(
    session_id: int,
    plan: Plan,
    users: int,
    target_rps: float | None,
    *,
    generation_floor: int,
    load_started_at: float | None,
    weights: Sequence[float] | None,
    stats: Mapping[str, int],
) -> list[tuple[int, int]]:
    """Publish a session whose Redis state was lost again and queue all its shards, each as
    a generation above ``generation_floor``; returns (index, generation) of the shards queued.
    See ``control.republish_session``."""
    client = get_redis()
    shares = dict(enumerate(shard_shares(users, target_rps)))
    mark_dispatched(client, session_id)
    dispatched = republish_session(
        client,
        session_id,
        plan,
        shares=shares,
        generation_floor=generation_floor,
        load_started_at=load_started_at,
        weights=weights,
        stats=stats,
    )
    _send_shards(session_id, dispatched)
    return dispatched
