"""Weighted random choice of the next endpoint."""

import math
import random
from collections import Counter

import pytest

from apps.workers.selection import EndpointSelector

PICKS = 100_000


class FixedDraw:
    """A stand-in for random.Random whose random() always returns the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


LARGEST_DRAW = math.nextafter(1.0, 0.0)  # the largest value random() can return


def pick_counts(weights, picks=PICKS, seed=42) -> Counter:
    selector = EndpointSelector(weights)
    rng = random.Random(seed)
    return Counter(selector.pick(rng) for _ in range(picks))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weights_3_to_1_give_75_25_within_5_standard_deviations(seed):
    counts = pick_counts([3, 1], seed=seed)

    p = 0.75
    sd = math.sqrt(PICKS * p * (1 - p))
    assert set(counts) == {0, 1}
    assert abs(counts[0] - PICKS * p) <= 5 * sd
    assert counts[0] + counts[1] == PICKS


def test_fractional_weights_are_proportional():
    counts = pick_counts([0.5, 1.5, 2.0], picks=40_000)
    for index, p in enumerate([0.125, 0.375, 0.5]):
        sd = math.sqrt(40_000 * p * (1 - p))
        assert abs(counts[index] - 40_000 * p) <= 5 * sd, index


@pytest.mark.parametrize(
    "weights",
    [[0, 1], [1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 2, 0, 3, 0]],
    ids=["zero-first", "zero-last", "zero-both-ends", "zero-middle", "many-zeros"],
)
def test_zero_weight_is_never_picked(weights):
    counts = pick_counts(weights, picks=20_000)
    assert {index for index, weight in enumerate(weights) if weight > 0} == set(counts)


@pytest.mark.parametrize("draw", [0.0, 0.5, LARGEST_DRAW])
@pytest.mark.parametrize("weights", [[0, 1, 0], [0.0, 0.1, 0.2, 0.0], [1, 0, 1, 0]])
def test_zero_weight_is_never_picked_even_at_extreme_draws(weights, draw):
    index = EndpointSelector(weights).pick(FixedDraw(draw))
    assert weights[index] > 0


def test_a_draw_on_a_cumulative_boundary_goes_to_the_next_positive_weight():
    # cumulative [1, 1, 2]; a draw of exactly 1.0 belongs to the third endpoint.
    assert EndpointSelector([1, 0, 1]).pick(FixedDraw(0.5)) == 2


@pytest.mark.parametrize("weights", [[0], [0, 0], [0.0, 0.0, 0.0], []])
def test_no_positive_weight_is_refused(weights):
    with pytest.raises(ValueError, match="positive weight"):
        EndpointSelector(weights)


@pytest.mark.parametrize("weights", [[-1], [1, -1], [-0.5, 2, 3], [5, -5]])
def test_negative_weight_is_refused(weights):
    with pytest.raises(ValueError, match="negative"):
        EndpointSelector(weights)


@pytest.mark.parametrize("weight", [1, 0.001, 1000])
def test_single_endpoint_is_always_index_0(weight):
    selector = EndpointSelector([weight])
    rng = random.Random(7)
    assert {selector.pick(rng) for _ in range(1000)} == {0}
    assert selector.pick(FixedDraw(LARGEST_DRAW)) == 0


def test_pick_without_an_rng_uses_the_module_random():
    selector = EndpointSelector([0, 1, 0, 1])
    picks = {selector.pick() for _ in range(1000)}
    assert picks == {1, 3}


@pytest.mark.parametrize("weights", [[float("inf"), 1.0], [1.0, float("nan")]])
def test_non_finite_weights_are_refused(weights):
    with pytest.raises(ValueError):
        EndpointSelector(weights)
