"""Weighted random choice of the next endpoint."""

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate


class EndpointSelector:
    """Picks endpoint positions in proportion to their weights.

    A weight of 0 is never picked. Cumulative weights are computed once, so a pick is one
    random number and a binary search, whatever the number of endpoints.
    """

    def __init__(self, weights: Sequence[float]) -> None:
        if any(not math.isfinite(weight) or weight < 0 for weight in weights):
            raise ValueError("Endpoint weights must be finite and not negative.")
        self._cumulative = list(accumulate(float(weight) for weight in weights))
        self._total = self._cumulative[-1] if self._cumulative else 0.0
        if self._total <= 0:
            raise ValueError("At least one endpoint needs a positive weight.")

    def pick(self, rng: random.Random | None = None) -> int:
        draw = (rng or random).random() * self._total
        index = bisect_right(self._cumulative, draw)
        # random() < 1 keeps draw below the total, but guard the float edge anyway.
        return min(index, len(self._cumulative) - 1)
