"""A log-linear latency histogram: fixed memory, mergeable by addition, 0.4% resolution.

Latencies are recorded in whole microseconds. Values below 256 µs get a bucket each; above
that, every power of two is split into 128 equal buckets, so a bucket is never wider than
1/128 of its value and the reported midpoint is within 0.4% of any value in it (the HDR
histogram layout). One hour of latencies needs about 3,000 possible buckets, of which a
real run touches a few dozen, so shards and the database keep only the non-empty ones.

Counts add up across shards and flushes, which is what lets Redis aggregate a session with
plain HINCRBY and the monitor derive exact-to-the-bucket percentiles from the sum.
"""

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate

PRECISION_BITS = 8
_LINEAR_LIMIT = 1 << PRECISION_BITS  # values below this have a bucket of their own
_HALF = _LINEAR_LIMIT >> 1  # buckets per power of two above the linear range


def bucket_index(value_us: int) -> int:
    """The bucket that holds ``value_us`` (negative values count as 0)."""
    if value_us < _LINEAR_LIMIT:
        return value_us if value_us > 0 else 0
    shift = value_us.bit_length() - PRECISION_BITS
    return _LINEAR_LIMIT + (shift - 1) * _HALF + (value_us >> shift) - _HALF


def bucket_bounds(index: int) -> tuple[int, int]:
    """The half-open range [low, high) of microsecond values that land in bucket ``index``."""
    if index < _LINEAR_LIMIT:
        return index, index + 1
    offset = index - _LINEAR_LIMIT
    shift = offset // _HALF + 1
    mantissa = offset % _HALF + _HALF
    return mantissa << shift, (mantissa + 1) << shift


def cumulative_counts(
    counts: Mapping[int, int] | Mapping[str, int], limits_us: Iterable[int]
) -> list[int]:
    """How many recorded values are at most each limit (ascending limits, microseconds).

    A bucket counts toward a limit only when every value it can hold is at most the limit,
    so the counts are never more than the truth: values in the bucket that straddles a limit
    (at most 1/128 of the limit wide) are counted at the next one. Accepts the database's
    form of the counts (bucket index as a string) as well as the engine's.
    """
    limits = sorted(limits_us)
    per_limit = [0] * len(limits)
    for index, count in counts.items():
        largest_value = bucket_bounds(int(index))[1] - 1
        slot = bisect_left(limits, largest_value)
        if slot < len(limits):
            per_limit[slot] += int(count)
    return list(accumulate(per_limit))


def bucket_midpoint_us(index: int) -> float:
    low, high = bucket_bounds(index)
    return (low + high - 1) / 2


def percentiles_ms(
    counts: Mapping[int, int],
    quantiles: Iterable[float],
    *,
    min_us: int | None = None,
    max_us: int | None = None,
) -> dict[float, float | None]:
    """Latency at each quantile (0..1), in milliseconds, from bucket counts.

    The value reported is the midpoint of the bucket holding the quantile's rank (the
    nearest-rank definition), clamped to the exact minimum and maximum when they are known;
    the first and last ranks are the exact minimum and maximum themselves.
    """
    wanted = sorted(set(quantiles))
    total = sum(counts.values())
    if total == 0:
        return {q: None for q in wanted}
    results: dict[float, float | None] = {}
    ordered = sorted((index, count) for index, count in counts.items() if count > 0)
    cumulative = 0
    position = 0
    for q in wanted:
        rank = max(1, min(total, _ceil(q * total)))
        while cumulative + ordered[position][1] < rank:
            cumulative += ordered[position][1]
            position += 1
        if rank == total and max_us is not None:
            value_us = float(max_us)
        elif rank == 1 and min_us is not None:
            value_us = float(min_us)
        else:
            value_us = bucket_midpoint_us(ordered[position][0])
            if min_us is not None:
                value_us = max(value_us, min_us)
            if max_us is not None:
                value_us = min(value_us, max_us)
        results[q] = value_us / 1000.0
    return results


def _ceil(value: float) -> int:
    # Guard against 0.95 * 100 = 95.00000000000001 turning the 95th rank into the 96th.
    rounded = round(value)
    if abs(value - rounded) < 1e-9:
        return int(rounded)
    return int(value) + (value > int(value))


# The quantiles a distribution chart plots: evenly through the body, then ever closer to 1,
# where latency problems live (the "percentile spectrum" of HDR histograms).
CURVE_QUANTILES: tuple[float, ...] = (
    *(step / 20 for step in range(0, 19)),  # 0, 0.05 .. 0.90
    0.95,
    0.975,
    0.99,
    0.995,
    0.999,
    0.9995,
    0.9999,
    1.0,
)


def percentile_curve(
    counts: Mapping[int, int] | Mapping[str, int],
    *,
    min_us: int | None = None,
    max_us: int | None = None,
    quantiles: Iterable[float] = CURVE_QUANTILES,
) -> list[tuple[float, float]]:
    """(quantile, latency ms) pairs of a stored histogram, for a distribution chart.

    Accepts the database's form (bucket index as a string) as well as the engine's, so any
    percentile of a finished run can be read back from its rows; empty when nothing was
    recorded.
    """
    buckets = {int(index): int(count) for index, count in counts.items() if int(count) > 0}
    if not buckets:
        return []
    values = percentiles_ms(buckets, quantiles, min_us=min_us, max_us=max_us)
    return [(q, value) for q, value in values.items() if value is not None]
