"""Pacing arithmetic: open-model arrival times with a linear ramp, backoff with full jitter,
ramp-up start delays of closed-model users, and think times."""

import math
import random
import statistics
from itertools import pairwise

import pytest

from apps.workers.pacing import ArrivalSchedule, backoff_s, ramp_offsets_s, think_time_s

# (rate rps, ramp s): whole and fractional arrival counts during the ramp, slow and fast rates.
SCHEDULES = [(1000.0, 10.0), (3.0, 1.0), (7.3, 2.9), (0.5, 5.0), (250.0, 0.4), (40.0, 3.0)]


def ramp_arrivals(rate: float, ramp: float) -> float:
    """N(t) = rate t^2 / (2 ramp) during the ramp, so rate * ramp / 2 arrivals at its end."""
    return rate * ramp / 2


def last_ramp_arrival(rate: float, ramp: float) -> int:
    return math.floor(ramp_arrivals(rate, ramp) + 1e-9)


# --- ArrivalSchedule without a ramp ----------------------------------------------------------


@pytest.mark.parametrize("rate", [1.0, 3.0, 12.5, 1000.0, 0.25])
def test_without_ramp_arrival_k_is_due_at_k_over_rate(rate):
    schedule = ArrivalSchedule(rate)
    for k in range(1, 2001):
        assert schedule.offset_s(k) == pytest.approx(k / rate, rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("ramp", [0.0, -5.0])
def test_zero_or_negative_ramp_means_no_ramp(ramp):
    schedule = ArrivalSchedule(10.0, ramp)
    assert schedule.ramp_s == 0.0
    assert [schedule.offset_s(k) for k in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("rate", [0, 0.0, -1.0, -0.001])
def test_a_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ValueError):
        ArrivalSchedule(rate)


# --- ArrivalSchedule with a ramp ------------------------------------------------------------


@pytest.mark.parametrize(("rate", "ramp"), SCHEDULES)
def test_ramped_offsets_are_strictly_increasing(rate, ramp):
    schedule = ArrivalSchedule(rate, ramp)
    horizon = int(ramp_arrivals(rate, ramp)) + int(rate * 5) + 10
    offsets = [schedule.offset_s(k) for k in range(1, horizon)]
    assert all(b > a for a, b in pairwise(offsets))
    assert offsets[0] > 0


@pytest.mark.parametrize(("rate", "ramp"), SCHEDULES)
def test_ramped_arrival_k_follows_the_integral_of_a_linear_rate(rate, ramp):
    """k = rate t^2 / (2 ramp)  <=>  t = sqrt(2 k ramp / rate) while the ramp lasts."""
    schedule = ArrivalSchedule(rate, ramp)
    for k in range(1, last_ramp_arrival(rate, ramp) + 1):
        t = schedule.offset_s(k)
        assert t <= ramp + 1e-12
        assert rate * t * t / (2 * ramp) == pytest.approx(k, rel=1e-9)


def test_the_first_half_of_the_ramp_has_a_quarter_of_its_arrivals():
    rate, ramp = 1000.0, 10.0  # 5000 arrivals during the ramp
    schedule = ArrivalSchedule(rate, ramp)
    in_first_half = sum(1 for k in range(1, 5001) if schedule.offset_s(k) <= ramp / 2)
    in_second_half = sum(1 for k in range(1, 5001) if ramp / 2 < schedule.offset_s(k) <= ramp)
    assert in_first_half == 1250  # rate (ramp/2)^2 / (2 ramp) = rate ramp / 8
    assert in_second_half == 3750
    assert schedule.due_by(ramp / 2) == 1250
    assert schedule.due_by(ramp) == 5000


def test_the_instantaneous_rate_grows_linearly_during_the_ramp():
    rate, ramp = 1000.0, 10.0
    schedule = ArrivalSchedule(rate, ramp)
    # Arrivals in each second of the ramp: N(s+1) - N(s) = rate (2 s + 1) / (2 ramp).
    per_second = [schedule.due_by(s + 1) - schedule.due_by(s) for s in range(10)]
    assert per_second == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]


@pytest.mark.parametrize(("rate", "ramp"), SCHEDULES)
def test_the_schedule_is_continuous_at_the_end_of_the_ramp(rate, ramp):
    schedule = ArrivalSchedule(rate, ramp)
    last = last_ramp_arrival(rate, ramp)
    if last >= 1:
        assert schedule.offset_s(last) <= ramp + 1e-12
    following = schedule.offset_s(last + 1)
    assert ramp < following <= ramp + 1 / rate + 1e-12
    # The rate never exceeds the target, so no two arrivals are closer than 1/rate.
    if last >= 1:
        assert following - schedule.offset_s(last) >= 1 / rate - 1e-9


@pytest.mark.parametrize(("rate", "ramp"), SCHEDULES)
def test_after_the_ramp_arrivals_are_exactly_one_over_rate_apart(rate, ramp):
    schedule = ArrivalSchedule(rate, ramp)
    first = last_ramp_arrival(rate, ramp) + 1
    for k in range(first, first + 500):
        gap = schedule.offset_s(k + 1) - schedule.offset_s(k)
        assert gap == pytest.approx(1 / rate, rel=1e-9), k


@pytest.mark.parametrize(("rate", "ramp"), SCHEDULES)
def test_gaps_shrink_during_the_ramp_and_never_get_below_one_over_rate(rate, ramp):
    schedule = ArrivalSchedule(rate, ramp)
    horizon = int(ramp_arrivals(rate, ramp)) + 20
    offsets = [0.0] + [schedule.offset_s(k) for k in range(1, horizon)]
    gaps = [b - a for a, b in pairwise(offsets)]
    assert all(later <= earlier + 1e-9 for earlier, later in pairwise(gaps))
    assert min(gaps) >= 1 / rate - 1e-9


# --- due_by ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "ramp"), [(1000.0, 0.0), (12.5, 0.0), *SCHEDULES])
def test_due_by_counts_the_arrivals_whose_offset_has_passed(rate, ramp):
    schedule = ArrivalSchedule(rate, ramp)
    horizon = int(ramp_arrivals(rate, ramp)) + int(rate * 3) + 10
    for k in range(1, horizon):
        offset = schedule.offset_s(k)
        assert schedule.due_by(offset + 1e-9) >= k, k
        assert schedule.due_by(offset - 1e-6) < k, k
        assert schedule.due_by(offset) == k, k


@pytest.mark.parametrize("elapsed", [0.0, -1.0, -1e-9])
def test_nothing_is_due_before_the_start(elapsed):
    assert ArrivalSchedule(100.0).due_by(elapsed) == 0
    assert ArrivalSchedule(100.0, 5.0).due_by(elapsed) == 0


def test_due_by_does_not_drift_over_an_hour_at_1000_rps():
    rate = 1000.0
    schedule = ArrivalSchedule(rate)
    for second in range(0, 3601):
        assert schedule.due_by(float(second)) == 1000 * second, second
    rng = random.Random(42)
    for k in [*rng.sample(range(1, 3_600_001), 20_000), 3_600_000, 3_599_999]:
        assert schedule.due_by(k / rate) == k, k
        assert schedule.offset_s(k) == pytest.approx(k / rate, rel=1e-15)


def test_due_by_after_an_hour_long_run_with_a_ramp_has_the_exact_count():
    rate, ramp = 1000.0, 60.0  # 30 000 arrivals during the ramp
    schedule = ArrivalSchedule(rate, ramp)
    assert schedule.due_by(ramp) == 30_000
    for second in range(61, 3601):
        assert schedule.due_by(float(second)) == 30_000 + 1000 * (second - 60), second


# --- backoff_s ------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, -1, -100])
def test_no_failures_means_no_backoff(failures):
    assert backoff_s(random.Random(1), failures, 0.5, 30.0) == 0.0


def test_no_base_means_no_backoff():
    assert backoff_s(random.Random(1), 5, 0.0, 30.0) == 0.0


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 5, 6, 7, 8, 12, 40])
def test_backoff_stays_within_zero_and_the_capped_exponential(failures):
    base, cap = 0.25, 10.0
    ceiling = min(cap, base * 2 ** (failures - 1))
    rng = random.Random(failures)
    draws = [backoff_s(rng, failures, base, cap) for _ in range(2000)]
    assert all(0.0 <= draw <= ceiling for draw in draws)
    assert max(draws) > 0.9 * ceiling  # full jitter: the whole range is used


def test_mean_backoff_doubles_with_each_failure_until_the_cap():
    base, cap = 0.1, 3.0  # ceilings 0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, ...
    means = []
    for failures in range(1, 9):
        rng = random.Random(1000 + failures)
        means.append(statistics.fmean(backoff_s(rng, failures, base, cap) for _ in range(4000)))
    for failures, mean in enumerate(means, start=1):
        assert mean == pytest.approx(min(cap, base * 2 ** (failures - 1)) / 2, rel=0.06)
    assert all(later > 1.5 * earlier for earlier, later in pairwise(means[:6]))
    assert means[6] == pytest.approx(means[5], rel=0.1)  # capped: no further growth
    assert means[7] == pytest.approx(means[5], rel=0.1)


@pytest.mark.parametrize("failures", [31, 64, 1025, 10**6, 10**18])
def test_a_huge_failure_count_does_not_overflow(failures):
    draw = backoff_s(random.Random(7), failures, 1.0, 60.0)
    assert math.isfinite(draw)
    assert 0.0 <= draw <= 60.0


def test_backoff_is_reproducible_with_a_seeded_rng():
    first = [backoff_s(random.Random(5), n, 0.5, 8.0) for n in range(1, 10)]
    second = [backoff_s(random.Random(5), n, 0.5, 8.0) for n in range(1, 10)]
    assert first == second


# --- ramp_offsets_s -------------------------------------------------------------------------


@pytest.mark.parametrize(("users", "ramp"), [(1, 10.0), (4, 2.0), (10, 10.0), (7, 3.5)])
def test_ramp_offsets_start_at_zero_and_are_evenly_spaced_below_the_ramp(users, ramp):
    offsets = ramp_offsets_s(users, ramp)
    assert len(offsets) == users
    assert offsets[0] == 0.0
    for index, offset in enumerate(offsets):
        assert offset == pytest.approx(index * ramp / users)
        assert offset < ramp
    gaps = [b - a for a, b in pairwise(offsets)]
    assert gaps == pytest.approx([ramp / users] * (users - 1))


def test_four_users_over_two_seconds_start_half_a_second_apart():
    assert ramp_offsets_s(4, 2.0) == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("ramp", [0.0, -3.0])
def test_without_a_ramp_every_user_starts_at_once(ramp):
    assert ramp_offsets_s(5, ramp) == [0.0] * 5


@pytest.mark.parametrize("users", [0, -2])
def test_no_users_means_no_offsets(users):
    assert ramp_offsets_s(users, 10.0) == []
    assert ramp_offsets_s(users, 0.0) == []


# --- think_time_s ---------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (0.5, 2.0), (1.0, 1.0), (0.001, 0.002)])
def test_think_time_lies_within_the_interval(low, high):
    rng = random.Random(3)
    draws = [think_time_s(rng, low, high) for _ in range(2000)]
    assert all(low <= draw <= high for draw in draws)
    if high > low:
        assert max(draws) - min(draws) > 0.8 * (high - low)  # spread over the interval


@pytest.mark.parametrize("low", [0.0, 0.5])
def test_think_time_is_zero_when_the_maximum_is_zero(low):
    rng = random.Random(3)
    assert [think_time_s(rng, low, 0.0) for _ in range(10)] == [0.0] * 10
