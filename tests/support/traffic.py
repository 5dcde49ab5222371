"""What a test server received lately: rates over a window, a mix of paths over the last
seconds, and silence once the load has stopped."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from .waiting import assert_stays, wait_until


class RecentCounts:
    """Counts read at each call, and how many more arrived over the last ``window_s`` seconds.

    Polled from ``wait_until``: a condition on what arrived *lately* (the mix after a weight
    change, a second without a request) holds as soon as the thing happened, without a
    fixed wait for it to start.
    """

    def __init__(self, read: Callable[[], tuple[int, ...]], window_s: float) -> None:
        self.read = read
        self.window_s = window_s
        self.snapshots: deque[tuple[float, tuple[int, ...]]] = deque()

    def __call__(self) -> tuple[int, ...] | None:
        """What arrived since the latest reading at least ``window_s`` old (None before one)."""
        now, counts = time.monotonic(), self.read()
        self.snapshots.append((now, counts))
        oldest = None
        while now - self.snapshots[0][0] >= self.window_s:
            oldest = self.snapshots.popleft()
        if oldest is None:
            return None
        self.snapshots.appendleft(oldest)
        return tuple(count - was for count, was in zip(counts, oldest[1], strict=True))


def rate_over(server, path: str, seconds: float) -> float:
    """Requests per second to ``path`` over the next ``seconds``: a measurement, not a wait."""
    before = server.count(path)
    time.sleep(seconds)
    return (server.count(path) - before) / seconds


def wait_for_quiet(server, timeout_s: float = 15.0, quiet_s: float = 3.0) -> float:
    """Until a full second passes without a request, then ``quiet_s`` more must stay silent.

    A stopped shard sends nothing after its next control poll (0.1 s in tests); the first
    second leaves room for the requests it sent just before that poll. Returns when the silent
    second began (``time.monotonic()``): the latest the load can have stopped.
    """
    recent = RecentCounts(lambda: (server.total,), window_s=1.0)
    wait_until(lambda: recent() == (0,), timeout_s, interval_s=0.05, what="A silent second")
    silent_from = time.monotonic() - 1.0
    before = server.total
    assert_stays(lambda: server.total == before, quiet_s, "No request after the load stopped")
    return silent_from
