"""The chaos soak's (bench figure l) reading of the target's rate after a fault: a fault that
never cut the rate scores 0, a dip scores the time until the rate is back and stays back, and
one that never recovers says so rather than scoring the end of the window."""

from bench.chaos import recovery


def rates(values, start=0.5, step=0.5):
    return [(start + index * step, value) for index, value in enumerate(values)]


def test_a_fault_that_never_cut_the_rate_scores_zero():
    assert recovery(rates([50, 49, 51, 50, 48, 50]), 0.0, 50) == (0.0, 48)


def test_a_dip_scores_the_time_until_the_rate_holds_at_ninety_percent_again():
    # Below 45 from 1.0 s, a single good sample at 2.5 s that does not hold, back for good
    # at 4.0 s.
    series = rates([50, 25, 24, 25, 46, 30, 25, 45, 50, 50, 50])
    assert recovery(series, 0.0, 50) == (4.0, 24)


def test_a_dip_long_after_the_fault_is_noise_not_the_fault():
    series = rates([50] * 12 + [40] + [50] * 4)  # the dip at 6.5 s: after the 5 s grace
    assert recovery(series, 0.0, 50) == (0.0, 40)


def test_a_rate_that_never_comes_back_is_not_scored_as_back():
    back, lowest = recovery(rates([50, 20, 20, 20, 46]), 0.0, 50)
    assert back is None
    assert lowest == 20
