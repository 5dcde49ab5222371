"""Which row of the target's data feed a virtual user's next iteration uses.

The feed comes whole with the plan (``plan.FeedPlan``): the hot loop never reads the
database. A shard makes one ``FeedCursor`` and asks it once per iteration (a single request,
or a whole flow iteration) for the row of the user about to act; the row is kept in
``user.row``, where the templates read it.

The modes say how rows are handed out:

- ``sequential``: in file order, each iteration of each user of the shard taking the next row,
  wrapping at the end. Each shard starts at its own offset (shard k of n at row
  ``k * rows // n``), so that shards of one session do not all send the first rows at once.
- ``random``: a uniformly random row per iteration.
- ``per_user``: user k keeps row ``(k - 1) mod rows`` for its whole life (a login per user).
"""

from __future__ import annotations

import random

from .plan import FeedPlan
from .userstate import UserState

SEQUENTIAL, RANDOM, PER_USER = "sequential", "random", "per_user"
# The modes, in the order people are offered them; the control plane's choices follow.
FEED_MODES = (SEQUENTIAL, RANDOM, PER_USER)


class FeedCursor:
    """Hands rows of one feed to the users of one shard."""

    __slots__ = ("_mode", "_next", "_random", "_rows")

    def __init__(
        self,
        feed: FeedPlan,
        shard_index: int,
        shard_count: int,
        rng: random.Random | None = None,
    ) -> None:
        if feed.mode not in FEED_MODES:
            raise ValueError(
                f"Unknown feed mode {feed.mode!r}; the modes are {', '.join(FEED_MODES)}."
            )
        if not feed.rows:
            raise ValueError("A data feed needs at least one row.")
        self._rows = feed.rows
        self._mode = feed.mode
        # Shards spread over the file, so that together they walk it evenly. A count the
        # shard could not know exactly (0, or below its index after a live change) still
        # gives an offset inside the feed: a shard never fails for where it starts.
        self._next = shard_index * len(feed.rows) // max(shard_count, 1) % len(feed.rows)
        self._random = rng or random.Random()

    def row_for(self, user: UserState) -> tuple[str, ...]:
        """The row of ``user``'s next iteration; also stored in ``user.row``."""
        rows = self._rows
        if self._mode == SEQUENTIAL:
            row = rows[self._next]
            self._next = (self._next + 1) % len(rows)
        elif self._mode == RANDOM:
            row = rows[self._random.randrange(len(rows))]
        else:  # per_user: fixed for the user's life, computed once
            row = user.row if user.row is not None else rows[(user.user_id - 1) % len(rows)]
        user.row = row
        return row
