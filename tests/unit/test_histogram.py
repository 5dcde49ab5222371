"""The log-linear latency histogram: bucket layout, resolution and nearest-rank percentiles."""

import math
import random
from fractions import Fraction

import pytest

from apps.workers.histogram import (
    bucket_bounds,
    bucket_index,
    bucket_midpoint_us,
    percentile_curve,
    percentiles_ms,
)

LINEAR_LIMIT = 256  # values below this have a bucket of their own


def large_values() -> list[int]:
    """Powers of two and their neighbours up to 2**37 (> 10**11), plus random values."""
    edges = {edge + delta for p in range(8, 38) for edge in (1 << p,) for delta in (-1, 0, 1)}
    rng = random.Random(1234)
    sample = {rng.randrange(100_000, 10**11) for _ in range(20_000)}
    return sorted(edges | sample | {10**11, 10**11 - 1})


# --- bucket layout ----------------------------------------------------------------------------


def test_every_value_up_to_100_000_lands_in_a_bucket_that_contains_it():
    for value in range(100_001):
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high, value


def test_large_values_up_to_10_to_the_11_land_in_a_bucket_that_contains_it():
    for value in large_values():
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high, value


def test_values_below_the_linear_limit_have_a_bucket_of_their_own():
    for value in range(LINEAR_LIMIT):
        assert bucket_index(value) == value
        assert bucket_bounds(value) == (value, value + 1)
        assert bucket_midpoint_us(value) == value


@pytest.mark.parametrize("value", [-1, -1000, -(10**12)])
def test_negative_values_count_as_zero(value):
    assert bucket_index(value) == 0


def test_indices_are_monotonic_and_skip_no_bucket():
    previous = bucket_index(0)
    for value in range(1, 100_001):
        index = bucket_index(value)
        assert index - previous in (0, 1), value
        previous = index


def test_indices_are_monotonic_for_large_values():
    indices = [bucket_index(value) for value in large_values()]
    assert indices == sorted(indices)


def test_consecutive_buckets_are_contiguous():
    for index in range(bucket_index(10**11) + 1):
        assert bucket_bounds(index)[1] == bucket_bounds(index + 1)[0], index


@pytest.mark.parametrize("value", [LINEAR_LIMIT, 300, 511, 512, 1000, 65_537, 10**6, 10**11])
def test_bucket_width_is_at_most_1_128_of_its_values_above_the_linear_range(value):
    low, high = bucket_bounds(bucket_index(value))
    assert (high - low) / low <= 1 / 128


def test_bucket_width_is_at_most_1_128_for_every_bucket_up_to_10_to_the_11():
    for index in range(LINEAR_LIMIT, bucket_index(10**11) + 1):
        low, high = bucket_bounds(index)
        assert (high - low) * 128 <= low, index


def test_midpoint_is_within_0_4_percent_of_every_value_in_the_bucket():
    for index in range(LINEAR_LIMIT, bucket_index(10**11) + 1):
        low, high = bucket_bounds(index)
        midpoint = bucket_midpoint_us(index)
        assert low <= midpoint <= high - 1
        assert max(midpoint - low, high - 1 - midpoint) <= 0.004 * low, index


# --- percentiles ------------------------------------------------------------------------------

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact_nearest_rank_us(ordered: list[int], q: float) -> int:
    rank = max(1, math.ceil(Fraction(str(q)) * len(ordered)))
    return ordered[rank - 1]


def histogram_of(values: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        index = bucket_index(value)
        counts[index] = counts.get(index, 0) + 1
    return counts


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    ("median_us", "sigma"),
    [(150, 0.8), (20_000, 1.0), (400_000, 1.5)],
    ids=["sub-ms", "20ms", "400ms-wide"],
)
def test_percentiles_match_exact_nearest_rank_within_half_a_percent(seed, median_us, sigma):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(math.log(median_us), sigma)) for _ in range(5_000)]
    ordered = sorted(values)

    result = percentiles_ms(histogram_of(values), QUANTILES, min_us=ordered[0], max_us=ordered[-1])

    for q in QUANTILES:
        exact_ms = exact_nearest_rank_us(ordered, q) / 1000
        assert result[q] == pytest.approx(exact_ms, rel=0.005, abs=0.001), q


def test_percentiles_are_clamped_to_the_exact_minimum_and_maximum():
    # 10_040 lies above the midpoint of its bucket [9_984, 10_048), 99_850 below the midpoint
    # of [99_840, 100_352): the midpoints alone would fall outside the observed range.
    counts = histogram_of([10_040, 50_000, 99_850])
    assert percentiles_ms(counts, (0.0, 1.0)) == {0.0: 10.0155, 1.0: 100.0955}

    clamped = percentiles_ms(counts, (0.0, 1.0), min_us=10_040, max_us=99_850)

    assert clamped == {0.0: 10.040, 1.0: 99.850}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_never_leave_the_exact_range(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(10, 2)) for _ in range(50)]
    lowest, highest = min(values), max(values)

    result = percentiles_ms(histogram_of(values), QUANTILES, min_us=lowest, max_us=highest)

    assert all(lowest / 1000 <= value <= highest / 1000 for value in result.values())


def test_p100_is_the_true_maximum_and_p0_the_true_minimum():
    counts = histogram_of([1_001, 1_003])  # one bucket, [1000, 1004)
    assert percentiles_ms(counts, [0.0, 1.0], min_us=1_001, max_us=1_003) == {
        0.0: 1.001,
        1.0: 1.003,
    }


def test_identical_latencies_are_reported_exactly():
    counts = histogram_of([123_457] * 50)
    result = percentiles_ms(counts, QUANTILES, min_us=123_457, max_us=123_457)
    assert set(result.values()) == {123.457}


@pytest.mark.parametrize("counts", [{}, {300: 0}, {5: 0, 900: 0}])
def test_empty_histogram_gives_none_for_every_quantile(counts):
    assert percentiles_ms(counts, (0.5, 0.99), min_us=None, max_us=None) == {
        0.5: None,
        0.99: None,
    }


# Values 1..100 µs each have their own bucket, so the nearest rank is exact. Several of these
# quantiles times 100 are not integers in floating point (0.29 * 100 = 28.999999999999996).
@pytest.mark.parametrize(
    ("q", "expected_value_us"),
    [
        (0.0, 1),
        (0.001, 1),
        (0.01, 1),
        (0.07, 7),
        (0.14, 14),
        (0.28, 28),
        (0.29, 29),
        (0.5, 50),
        (0.505, 51),
        (0.57, 57),
        (0.58, 58),
        (0.95, 95),
        (0.99, 99),
        (0.999, 100),
        (1.0, 100),
    ],
)
def test_nearest_rank_of_100_samples(q, expected_value_us):
    counts = histogram_of(list(range(1, 101)))
    assert percentiles_ms(counts, [q]) == {q: expected_value_us / 1000}


def test_quantiles_may_be_given_unsorted_and_repeated():
    counts = histogram_of(list(range(1, 101)))
    assert percentiles_ms(counts, [0.99, 0.5, 0.99, 0.1]) == {0.1: 0.010, 0.5: 0.050, 0.99: 0.099}


def test_zero_count_buckets_are_ignored():
    counts = {10: 1, 20: 0, 30: 1}
    assert percentiles_ms(counts, [0.5, 1.0]) == {0.5: 0.010, 1.0: 0.030}


def test_percentile_curve_reads_the_databases_string_keys_and_rises_to_the_exact_maximum():
    latencies_us = [1_000 * value for value in range(1, 1001)]  # 1 ms .. 1000 ms, uniform
    counts: dict[str, int] = {}
    for value in latencies_us:
        key = str(bucket_index(value))
        counts[key] = counts.get(key, 0) + 1
    curve = percentile_curve(counts, min_us=1_000, max_us=1_000_000)
    by_quantile = dict(curve)
    assert by_quantile[0.0] == 1.0 and by_quantile[1.0] == 1000.0
    assert by_quantile[0.5] == pytest.approx(500, rel=0.005)
    assert by_quantile[0.99] == pytest.approx(990, rel=0.005)
    values = [value for _, value in curve]
    assert values == sorted(values)


def test_percentile_curve_of_an_empty_histogram_is_empty():
    assert percentile_curve({}) == []
    assert percentile_curve({"12": 0}) == []
