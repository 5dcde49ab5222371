"""Splitting a session's virtual users into shard tasks."""

import math

import pytest

from apps.workers.dispatch import shard_sizes


@pytest.mark.parametrize(
    ("users", "per_shard", "expected"),
    [
        (5, 50, [5]),
        (50, 50, [50]),
        (51, 50, [26, 25]),
        (100, 50, [50, 50]),
        (101, 50, [34, 34, 33]),
        (1000, 50, [50] * 20),
        (7, 3, [3, 2, 2]),
        (1, 1, [1]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_examples(users, per_shard, expected):
    assert shard_sizes(users, per_shard) == expected


PER_SHARD = [1, 2, 3, 7, 10, 49, 50, 51, 300]


@pytest.mark.parametrize("per_shard", PER_SHARD)
def test_sizes_sum_to_the_users(per_shard):
    for users in range(1, 301):
        assert sum(shard_sizes(users, per_shard)) == users, users


@pytest.mark.parametrize("per_shard", PER_SHARD)
def test_no_shard_exceeds_the_limit(per_shard):
    for users in range(1, 301):
        assert max(shard_sizes(users, per_shard)) <= per_shard, users


@pytest.mark.parametrize("per_shard", PER_SHARD)
def test_sizes_differ_by_at_most_one(per_shard):
    for users in range(1, 301):
        sizes = shard_sizes(users, per_shard)
        assert max(sizes) - min(sizes) <= 1, users


@pytest.mark.parametrize("per_shard", PER_SHARD)
def test_uses_the_fewest_shards(per_shard):
    for users in range(1, 301):
        assert len(shard_sizes(users, per_shard)) == math.ceil(users / per_shard), users


@pytest.mark.parametrize("per_shard", [1, 7, 50])
def test_no_shard_is_empty_and_larger_shards_come_first(per_shard):
    for users in range(1, 301):
        sizes = shard_sizes(users, per_shard)
        assert min(sizes) >= 1, users
        assert sizes == sorted(sizes, reverse=True), users
