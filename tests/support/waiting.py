"""Waiting on what a test expects, never for a fixed time.

``wait_until`` polls until a thing happens; ``assert_stays`` is the one "nothing more
arrives" window: it checks a condition keeps holding for a stretch of time, which is the only
way to show that something does *not* happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object],
    timeout_s: float,
    interval_s: float = 0.1,
    what: str = "Condition met",
):
    """Poll ``condition`` until it returns something truthy; fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)


def assert_stays(
    condition: Callable[[], object],
    for_s: float,
    what: str = "Condition held",
    interval_s: float = 0.1,
) -> None:
    """Check ``condition`` holds through the next ``for_s`` seconds, failing at the first
    moment it does not (saying ``what`` should have held): a window in which nothing more may
    arrive."""
    deadline = time.monotonic() + for_s
    while True:
        assert condition(), f"{what}: no longer true within {for_s} s"
        if time.monotonic() >= deadline:
            return
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
