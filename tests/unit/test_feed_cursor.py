"""The engine's feed cursor hands rows as its mode says: in order from the shard's offset,
uniformly at random, or one fixed row per user (pure logic, no processes)."""

import random
from collections import Counter

import pytest

from apps.workers.feed_cursor import FEED_MODES, FeedCursor
from apps.workers.plan import FeedPlan, Plan
from apps.workers.userstate import UserState


def feed(rows: int, mode: str) -> FeedPlan:
    return FeedPlan(
        columns=("n",), rows=tuple((str(i),) for i in range(rows)), mode=mode, name="n.csv"
    )


def test_sequential_walks_the_rows_in_order_from_the_first_shard_offset_and_wraps():
    cursor = FeedCursor(feed(5, "sequential"), shard_index=0, shard_count=1)
    users = [UserState(1), UserState(2)]
    taken = [cursor.row_for(users[i % 2])[0] for i in range(12)]
    assert taken == ["0", "1", "2", "3", "4", "0", "1", "2", "3", "4", "0", "1"]
    assert users[1].row == ("1",)  # the row is kept where the templates read it


@pytest.mark.parametrize(("shard_count", "offsets"), [(2, [0, 50]), (3, [0, 33, 66]),
                                                      (4, [0, 25, 50, 75])])  # fmt: skip
def test_each_shard_starts_at_its_own_offset(shard_count, offsets):
    starts = [
        FeedCursor(feed(100, "sequential"), index, shard_count).row_for(UserState(1))[0]
        for index in range(shard_count)
    ]
    assert starts == [str(offset) for offset in offsets]


def test_more_shards_than_rows_still_start_inside_the_feed():
    starts = [FeedCursor(feed(3, "sequential"), i, 10).row_for(UserState(1)) for i in range(10)]
    assert {row[0] for row in starts} <= {"0", "1", "2"}


@pytest.mark.parametrize(("shard_index", "shard_count"), [(2, 2), (5, 0), (7, 3)])
def test_a_count_the_shard_could_not_know_exactly_still_starts_inside_the_feed(
    shard_index, shard_count
):
    cursor = FeedCursor(feed(4, "sequential"), shard_index, shard_count)
    assert cursor.row_for(UserState(1))[0] in {"0", "1", "2", "3"}


def test_random_is_uniform_over_the_rows():
    cursor = FeedCursor(feed(10, "random"), 0, 1, rng=random.Random(7))
    user = UserState(1)
    counts = Counter(cursor.row_for(user)[0] for _ in range(20_000))
    assert set(counts) == {str(i) for i in range(10)}
    # 2,000 expected each; 6 standard deviations (about 42 each) is generous.
    assert all(1_750 < count < 2_250 for count in counts.values()), counts


def test_per_user_keeps_row_user_id_minus_one_modulo_rows():
    cursor = FeedCursor(feed(3, "per_user"), shard_index=1, shard_count=2)
    users = {user_id: UserState(user_id) for user_id in (1, 2, 3, 4, 7)}
    for _ in range(3):  # every iteration: the same row per user
        seen = {user_id: cursor.row_for(user)[0] for user_id, user in users.items()}
        assert seen == {1: "0", 2: "1", 3: "2", 4: "0", 7: "0"}


def test_bad_plans_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="Unknown feed mode 'shuffle'"):
        FeedCursor(feed(3, "shuffle"), 0, 1)
    with pytest.raises(ValueError, match="at least one row"):
        FeedCursor(feed(0, "random"), 0, 1)


def test_the_feed_survives_the_plans_json_round_trip():
    plan = Plan(endpoints=(), request_interval_min=1, request_interval_max=2,
                feed=feed(3, "per_user"))  # fmt: skip
    again = Plan.from_json(plan.to_json())
    assert again.feed == plan.feed
    assert FeedCursor(again.feed, 0, 1).row_for(UserState(2)) == ("1",)


def test_the_modes_are_the_three_the_contract_names():
    assert FEED_MODES == ("sequential", "random", "per_user")
