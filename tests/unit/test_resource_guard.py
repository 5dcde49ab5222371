"""The resource guard: a shard past its memory or CPU ceiling sheds a quarter of its users
after 3 checks in a row, and restores them after 10 comfortable checks in a row."""

from types import SimpleNamespace

import pytest

from apps.workers.resources import ResourceGuard

MB = 2**20


class FakeProcess:
    """Stands in for psutil.Process: the test sets the readings of the next check."""

    def __init__(self, rss_mb: float = 100.0, cpu_percent: float = 10.0) -> None:
        self.rss_mb = rss_mb
        self.cpu = cpu_percent
        self.cpu_calls = 0

    def memory_info(self):
        return SimpleNamespace(rss=int(self.rss_mb * MB))

    def cpu_percent(self, interval):
        assert interval is None  # never blocks the event loop
        self.cpu_calls += 1
        return self.cpu


def guard_with(max_rss_mb=500.0, max_cpu_percent=80.0, **readings):
    process = FakeProcess(**readings)
    return ResourceGuard(max_rss_mb, max_cpu_percent, process=process), process


def checks(guard: ResourceGuard, count: int) -> list:
    return [guard.check() for _ in range(count)]


def shed_once(guard: ResourceGuard, process: FakeProcess) -> None:
    process.rss_mb, process.cpu = 900.0, 10.0
    assert [d.changed for d in checks(guard, 3)] == [False, False, True]


# --- disabled -------------------------------------------------------------------------------


def test_both_ceilings_zero_disables_the_guard():
    guard, _ = guard_with(0, 0, rss_mb=100_000.0, cpu_percent=10_000.0)
    assert not guard.enabled
    decisions = checks(guard, 20)
    assert all(d.factor == 1.0 and not d.changed for d in decisions)
    assert guard.factor == 1.0


@pytest.mark.parametrize(("max_rss", "max_cpu"), [(500, 0), (0, 80)])
def test_one_ceiling_is_enough_to_enable_the_guard(max_rss, max_cpu):
    guard, _ = guard_with(max_rss, max_cpu)
    assert guard.enabled


def test_the_first_cpu_reading_is_taken_at_construction():
    _, process = guard_with()
    assert process.cpu_calls == 1


# --- shedding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rss_mb", "cpu", "message"),
    [
        (900.0, 10.0, "memory 900 MB > 500 MB"),
        (100.0, 95.0, "CPU 95% > 80%"),
        (900.0, 95.0, "memory 900 MB > 500 MB, CPU 95% > 80%"),
    ],
)
def test_sheds_a_quarter_after_three_consecutive_checks_over_a_ceiling(rss_mb, cpu, message):
    guard, _ = guard_with(rss_mb=rss_mb, cpu_percent=cpu)
    first, second, third = checks(guard, 3)
    assert (first.factor, first.changed) == (1.0, False)
    assert (second.factor, second.changed) == (1.0, False)
    assert (third.factor, third.changed) == (0.75, True)
    assert third.message == message
    assert guard.factor == 0.75


def test_keeps_shedding_a_quarter_every_three_checks_while_over():
    guard, _ = guard_with(rss_mb=900.0)
    decisions = checks(guard, 9)
    assert [d.changed for d in decisions] == [False, False, True] * 3
    assert [d.factor for d in decisions] == pytest.approx(
        [1.0, 1.0, 0.75, 0.75, 0.75, 0.5625, 0.5625, 0.5625, 0.421875]
    )


def test_the_factor_never_falls_below_one_percent():
    guard, _ = guard_with(cpu_percent=500.0)
    checks(guard, 3 * 40)
    assert guard.factor == 0.01


def test_a_reading_at_the_ceiling_is_not_over_it():
    guard, _ = guard_with(rss_mb=500.0, cpu_percent=80.0)
    assert not any(d.changed for d in checks(guard, 10))
    assert guard.factor == 1.0


@pytest.mark.parametrize(
    "interruption",
    [(450.0, 10.0), (100.0, 10.0), (100.0, 70.0)],
    ids=["memory-between-80-and-100-percent", "comfortable", "cpu-between-80-and-100-percent"],
)
def test_checks_over_the_ceiling_must_be_consecutive_to_shed(interruption):
    guard, process = guard_with(rss_mb=900.0)
    checks(guard, 2)
    process.rss_mb, process.cpu = interruption
    assert not guard.check().changed
    process.rss_mb, process.cpu = 900.0, 10.0
    assert [d.changed for d in checks(guard, 3)] == [False, False, True]


# --- restoring ------------------------------------------------------------------------------


def test_restores_after_ten_consecutive_comfortable_checks():
    guard, process = guard_with()
    shed_once(guard, process)
    process.rss_mb, process.cpu = 100.0, 10.0
    decisions = checks(guard, 10)
    assert [d.changed for d in decisions] == [False] * 9 + [True]
    assert [d.factor for d in decisions] == [0.75] * 9 + [1.0]
    assert guard.factor == 1.0
    assert decisions[-1].message == "memory 100 MB, CPU 10%"


def test_restores_one_step_at_a_time_and_caps_at_full_load():
    guard, process = guard_with()
    shed_once(guard, process)
    shed_once(guard, process)
    assert guard.factor == pytest.approx(0.5625)
    process.rss_mb, process.cpu = 100.0, 10.0
    decisions = checks(guard, 30)
    assert [i for i, d in enumerate(decisions) if d.changed] == [9, 19]
    assert decisions[9].factor == pytest.approx(0.75)
    assert decisions[19].factor == 1.0
    assert guard.factor == 1.0


def test_restoring_after_a_shed_from_the_floor_never_exceeds_full_load():
    guard, process = guard_with()
    for _ in range(3):
        shed_once(guard, process)
    process.rss_mb, process.cpu = 100.0, 10.0
    factors = [d.factor for d in checks(guard, 100)]
    assert max(factors) == 1.0
    assert factors[-1] == 1.0


@pytest.mark.parametrize(
    "middle",
    [(420.0, 10.0), (499.0, 10.0), (100.0, 65.0), (100.0, 79.0)],
    ids=["memory-84%", "memory-99.8%", "cpu-81%", "cpu-99%"],
)
def test_a_check_between_80_and_100_percent_neither_sheds_nor_restores(middle):
    guard, process = guard_with()
    shed_once(guard, process)
    process.rss_mb, process.cpu = middle
    decisions = checks(guard, 25)
    assert not any(d.changed for d in decisions)
    assert guard.factor == 0.75


@pytest.mark.parametrize(
    "middle",
    [(420.0, 10.0), (100.0, 65.0)],
    ids=["memory-84%", "cpu-81%"],
)
def test_a_check_between_80_and_100_percent_resets_the_comfortable_streak(middle):
    guard, process = guard_with()
    shed_once(guard, process)
    process.rss_mb, process.cpu = 100.0, 10.0
    assert not any(d.changed for d in checks(guard, 9))
    process.rss_mb, process.cpu = middle
    assert not guard.check().changed
    process.rss_mb, process.cpu = 100.0, 10.0
    decisions = checks(guard, 10)
    assert [d.changed for d in decisions] == [False] * 9 + [True]


def test_a_check_over_the_ceiling_resets_the_comfortable_streak():
    guard, process = guard_with()
    shed_once(guard, process)
    process.rss_mb, process.cpu = 100.0, 10.0
    checks(guard, 9)
    process.rss_mb = 900.0
    assert not guard.check().changed
    process.rss_mb = 100.0
    assert [d.changed for d in checks(guard, 10)] == [False] * 9 + [True]


def test_comfortable_checks_at_full_load_change_nothing():
    guard, _ = guard_with()
    decisions = checks(guard, 30)
    assert all(d.factor == 1.0 and not d.changed and d.message == "" for d in decisions)


def test_a_disabled_ceiling_does_not_count_against_comfort():
    guard, process = guard_with(max_rss_mb=0, max_cpu_percent=80.0, rss_mb=100_000.0)
    process.cpu = 95.0
    checks(guard, 3)
    assert guard.factor == 0.75
    process.cpu = 10.0  # memory is huge, but it has no ceiling
    assert [d.changed for d in checks(guard, 10)] == [False] * 9 + [True]
