"""When virtual users send: think time (closed model), arrival times (open model), ramp-up.

Closed model: each user sends, waits for the answer, then thinks for a uniform
random time. The rate follows the target's latency.

Open model (k6's constant-arrival-rate, wrk2): requests are due at fixed times whatever the
target does, so a slow target cannot slow the load down or hide its delay. Latency is measured
from the intended time, and a request that finds no free user at its time is counted as
missed rather than quietly sent later.
"""

from __future__ import annotations

import math
import random


def think_time_s(rng: random.Random, interval_min_s: float, interval_max_s: float) -> float:
    return rng.uniform(interval_min_s, interval_max_s) if interval_max_s > 0 else 0.0


def backoff_s(rng: random.Random, consecutive_failures: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, base * 2^(n-1)))."""
    if consecutive_failures <= 0 or base_s <= 0:
        return 0.0
    ceiling = min(max_s, base_s * 2 ** min(consecutive_failures - 1, 30))
    return rng.uniform(0.0, ceiling)


def ramp_offsets_s(user_count: int, ramp_s: float) -> list[float]:
    """Start delays that bring ``user_count`` users up linearly over ``ramp_s`` seconds."""
    if ramp_s <= 0 or user_count <= 0:
        return [0.0] * max(user_count, 0)
    return [ramp_s * index / user_count for index in range(user_count)]


class ArrivalSchedule:
    """Intended send times of an open model at ``rate_rps``, ramping up linearly over
    ``ramp_s`` (the rate grows from 0, so the k-th arrival is at sqrt(2 k ramp / rate)).

    Times are exact functions of k rather than accumulated intervals, so a long run does not
    drift and a generator that falls behind catches up to the same count.
    """

    def __init__(self, rate_rps: float, ramp_s: float = 0.0) -> None:
        if rate_rps <= 0:
            raise ValueError("The rate of an open model must be positive.")
        self.rate_rps = rate_rps
        self.ramp_s = max(ramp_s, 0.0)
        self._ramp_arrivals = rate_rps * self.ramp_s / 2  # arrivals during the ramp

    def offset_s(self, k: int) -> float:
        """Seconds from the start at which arrival ``k`` (1, 2, ...) is due."""
        if k <= self._ramp_arrivals:
            return math.sqrt(2 * k * self.ramp_s / self.rate_rps)
        return self.ramp_s + (k - self._ramp_arrivals) / self.rate_rps

    def due_by(self, elapsed_s: float) -> int:
        """How many arrivals are due within ``elapsed_s`` seconds of the start."""
        if elapsed_s <= 0:
            return 0
        if elapsed_s <= self.ramp_s:
            due = self.rate_rps * elapsed_s * elapsed_s / (2 * self.ramp_s)
        else:
            due = self._ramp_arrivals + (elapsed_s - self.ramp_s) * self.rate_rps
        # offset_s(k) rounded to a float may land a hair below k arrivals: a tolerance
        # relative to the count keeps the two functions consistent at any size.
        return math.floor(due + max(1e-9, due * 1e-12))
