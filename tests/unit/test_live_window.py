"""The live latency percentiles' sliding window (apps/sessions/results/live.py): how far back
it reaches, and which percentiles its answers can tell apart from the slowest one. Pure:
ticks are given as the monitor stores them, [since_s, to_s, {bucket: count}]."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.sessions.results.live import answers_needed, merge_window
from apps.workers.histogram import bucket_index

NOW_S = 1_000_000.0


def ticks_of(latencies_ms_per_tick: list[list[float]], tick_s: float = 1.0) -> list:
    """One tick per list, the last one ending now, each holding those answers."""
    ticks = []
    count = len(latencies_ms_per_tick)
    for index, latencies in enumerate(latencies_ms_per_tick):
        to_s = NOW_S - (count - 1 - index) * tick_s
        histogram: dict[str, int] = {}
        for ms in latencies:
            bucket = str(bucket_index(int(ms * 1000)))
            histogram[bucket] = histogram.get(bucket, 0) + 1
        ticks.append([to_s - tick_s, to_s, histogram])
    return ticks


def test_answers_needed_to_tell_a_percentile_from_the_maximum():
    assert [answers_needed(q) for q in (0.5, 0.95, 0.99, 0.999)] == [2, 20, 100, 1000]


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_eight_answers_a_second_give_a_p99_below_the_maximum_over_a_stretched_window():
    """At 8 answers a second one tick's p95 and p99 are both its slowest answer. The window
    stretches past 10 s until it holds the 100 answers p99 needs, and says how far."""
    # 8 answers a second, from 5 to 1,000 ms, no two alike: a spread of latencies.
    latencies = [5 + (n * 37 % 200) * 5 for n in range(240)]
    window = merge_window(ticks_of([latencies[i : i + 8] for i in range(0, 240, 8)]), NOW_S)
    assert window.answers >= 100
    assert 10 < window.seconds <= 14
    slowest = max(latencies[-window.answers :])
    p50, p95, p99 = (window.percentiles[q] for q in (0.5, 0.95, 0.99))
    assert p50 < p95 < p99 < slowest


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_plenty_of_answers_keep_the_window_at_ten_seconds():
    many = [[10.0] * 95 + [200.0] * 5] * 30  # 100 answers a second
    window = merge_window(ticks_of(many), NOW_S)
    assert window.seconds == pytest.approx(10)
    assert window.answers == 1000
    assert window.percentiles[0.5] == pytest.approx(10, rel=0.02)
    assert window.percentiles[0.99] == pytest.approx(200, rel=0.02)


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_too_few_answers_leave_the_percentile_out_rather_than_draw_the_maximum():
    """One answer a second: after a minute, 60 answers, enough for p50 and p95, not p99."""
    window = merge_window(ticks_of([[float(ms)] for ms in range(1, 121)]), NOW_S)
    assert window.seconds == pytest.approx(60)
    assert window.answers == 60
    assert window.percentiles[0.5] is not None and window.percentiles[0.95] is not None
    assert window.percentiles[0.99] is None


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_a_single_answer_gives_no_percentile_at_all():
    window = merge_window(ticks_of([[], [], [42.0]]), NOW_S)
    assert window.answers == 1
    assert set(window.percentiles.values()) == {None}


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_no_tick_at_all_is_an_empty_window():
    window = merge_window([], NOW_S)
    assert (window.seconds, window.answers) == (0, 0)
    assert window.as_dict()["p99_ms"] is None


@override_settings(LIVE_WINDOW_S=10, LIVE_WINDOW_MAX_S=60)
def test_a_late_tick_counts_the_time_it_covers():
    """A monitor away for 25 s: its one tick covers the 25 s, and the window says so."""
    ticks = [[NOW_S - 25, NOW_S, {str(bucket_index(10_000)): 200}]]
    window = merge_window(ticks, NOW_S)
    assert window.seconds == pytest.approx(25)
    assert window.percentiles[0.99] == pytest.approx(10, rel=0.02)
