"""Per-endpoint circuit breaker of a shard.

Only failures that say the target is *unavailable* count: network errors, timeouts, and
HTTP 502/503/504. An endpoint that answers 500 on purpose (the demo's /performance/error)
is doing its job for the APM and keeps its load.

closed --(N unavailable in a row)--> open --(cooldown)--> half-open: one probe at a time
half-open --probe succeeds--> closed;  --probe fails--> open, cooldown doubled (capped)
"""

from __future__ import annotations

import time
from collections.abc import Callable

UNAVAILABLE_STATUSES = frozenset({502, 503, 504})

DENIED, ADMITTED, PROBE = 0, 1, 2


class CircuitBreaker:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        max_cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max(max_cooldown_s, cooldown_s)
        self.clock = clock
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self._probe_in_flight = False

    @property
    def enabled(self) -> bool:
        return self.failure_threshold > 0

    def admit(self) -> int:
        """May a request be sent now? ``DENIED``, ``ADMITTED``, or ``PROBE`` (half-open: one
        probe at a time). Pass the answer back to ``record`` with the request's outcome."""
        if not self.enabled or self.state == self.CLOSED:
            return ADMITTED
        if self.state == self.OPEN:
            if self.clock() < self._open_until:
                return DENIED
            self.state = self.HALF_OPEN
        if self._probe_in_flight:
            return DENIED
        self._probe_in_flight = True
        return PROBE

    def record(self, unavailable: bool, admission: int = ADMITTED) -> str | None:
        """The outcome of an admitted request. Returns the new state when it changed.

        Requests admitted before the breaker opened may still finish while it is open; only
        the probe decides whether it closes again.
        """
        if not self.enabled:
            return None
        if admission == PROBE:
            self._probe_in_flight = False
            if unavailable:
                self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
                return self._open()
            return self._close()
        if unavailable:
            self.consecutive_failures += 1
            if self.state == self.CLOSED and self.consecutive_failures >= self.failure_threshold:
                return self._open()
        elif self.state == self.CLOSED:
            self.consecutive_failures = 0
        return None

    def abandon(self, admission: int) -> None:
        """An admitted request ended without an outcome (cancelled at stop)."""
        if admission == PROBE:
            self._probe_in_flight = False

    def _open(self) -> str:
        self.state = self.OPEN
        self._open_until = self.clock() + self.cooldown_s
        return self.OPEN

    def _close(self) -> str:
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self.cooldown_s = self.base_cooldown_s
        return self.CLOSED
