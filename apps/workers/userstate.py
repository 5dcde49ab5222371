"""What one virtual user carries from request to request: a few hundred bytes, not megabytes.

A closed-model user keeps one for its whole life; an open-model arrival gets a fresh one. The
templates read it (``user_id``, the ``seq()`` counter, the feed row, a flow's variables), the
flows write their extracted variables and the target's cookies into it. The dictionaries stay
None until first needed, so the 20,000 users of a shard that sends fixed requests pay for
four slots each.
"""

from __future__ import annotations


class UserState:
    __slots__ = ("cookies", "counter", "row", "user_id", "variables")

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.counter = 0  # seq(): the last number handed out
        self.row: tuple[str, ...] | None = None  # the data feed's row of this iteration
        self.variables: dict[str, str] | None = None  # extracted by a flow's earlier steps
        self.cookies: dict[str, str] | None = None  # name -> value, set by the target
