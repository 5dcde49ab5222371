"""The per-endpoint circuit breaker: closed -> open after N unavailable outcomes in a row,
open -> half-open after a cooldown, one probe at a time, and a cooldown that doubles."""

import pytest

from apps.workers.breaker import ADMITTED, DENIED, PROBE, CircuitBreaker

THRESHOLD, COOLDOWN, MAX_COOLDOWN = 3, 1.0, 4.0


@pytest.fixture
def now():
    return [1000.0]


@pytest.fixture
def breaker(now):
    return CircuitBreaker(THRESHOLD, COOLDOWN, MAX_COOLDOWN, clock=lambda: now[0])


def trip(breaker: CircuitBreaker) -> list:
    """Record THRESHOLD unavailable outcomes; returns what each record returned."""
    return [breaker.record(True, breaker.admit()) for _ in range(THRESHOLD)]


def start_probe(breaker: CircuitBreaker, now: list) -> int:
    """Wait out the cooldown and take the probe."""
    now[0] += breaker.cooldown_s
    admission = breaker.admit()
    assert admission == PROBE
    return admission


# --- closed ---------------------------------------------------------------------------------


def test_a_new_breaker_is_closed_and_admits(breaker):
    assert breaker.state == CircuitBreaker.CLOSED
    assert [breaker.admit() for _ in range(10)] == [ADMITTED] * 10


def test_stays_closed_below_the_threshold(breaker):
    changes = [breaker.record(True, breaker.admit()) for _ in range(THRESHOLD - 1)]
    assert changes == [None] * (THRESHOLD - 1)
    assert breaker.state == CircuitBreaker.CLOSED
    assert breaker.admit() == ADMITTED


def test_opens_at_exactly_the_threshold_of_consecutive_unavailable_outcomes(breaker):
    assert trip(breaker) == [None] * (THRESHOLD - 1) + [CircuitBreaker.OPEN]
    assert breaker.state == CircuitBreaker.OPEN
    assert breaker.admit() == DENIED


def test_a_success_in_between_resets_the_count(breaker):
    for _ in range(THRESHOLD - 1):
        breaker.record(True)
    assert breaker.record(False) is None
    for _ in range(THRESHOLD - 1):
        assert breaker.record(True) is None
    assert breaker.state == CircuitBreaker.CLOSED
    assert breaker.record(True) == CircuitBreaker.OPEN


def test_record_returns_nothing_when_the_state_does_not_change(breaker):
    assert [breaker.record(False) for _ in range(5)] == [None] * 5
    assert breaker.record(True) is None
    assert breaker.state == CircuitBreaker.CLOSED


# --- open -----------------------------------------------------------------------------------


def test_while_open_requests_are_denied_until_the_cooldown_passes(breaker, now):
    trip(breaker)
    opened_at = now[0]
    for elapsed in (0.0, 0.25, 0.5, COOLDOWN - 1e-6):
        now[0] = opened_at + elapsed
        assert breaker.admit() == DENIED, elapsed
        assert breaker.state == CircuitBreaker.OPEN
    now[0] = opened_at + COOLDOWN
    assert breaker.admit() == PROBE
    assert breaker.state == CircuitBreaker.HALF_OPEN


def test_only_one_probe_is_admitted_at_a_time(breaker, now):
    trip(breaker)
    start_probe(breaker, now)
    assert [breaker.admit() for _ in range(5)] == [DENIED] * 5
    now[0] += 100.0
    assert breaker.admit() == DENIED  # still waiting for the probe, however long


def test_a_successful_probe_closes_the_breaker(breaker, now):
    trip(breaker)
    probe = start_probe(breaker, now)
    assert breaker.record(False, probe) == CircuitBreaker.CLOSED
    assert breaker.state == CircuitBreaker.CLOSED
    assert [breaker.admit() for _ in range(3)] == [ADMITTED] * 3


def test_a_closed_breaker_needs_the_full_threshold_again_after_a_probe_closed_it(breaker, now):
    trip(breaker)
    breaker.record(True, ADMITTED)  # a straggler failing while open
    breaker.record(False, start_probe(breaker, now))
    assert [breaker.record(True) for _ in range(THRESHOLD - 1)] == [None] * (THRESHOLD - 1)
    assert breaker.state == CircuitBreaker.CLOSED


def test_a_failed_probe_reopens_with_double_the_cooldown(breaker, now):
    trip(breaker)
    probe = start_probe(breaker, now)
    assert breaker.record(True, probe) == CircuitBreaker.OPEN
    assert breaker.state == CircuitBreaker.OPEN
    assert breaker.cooldown_s == 2 * COOLDOWN
    reopened_at = now[0]
    now[0] = reopened_at + 2 * COOLDOWN - 1e-6
    assert breaker.admit() == DENIED
    now[0] = reopened_at + 2 * COOLDOWN
    assert breaker.admit() == PROBE


def test_the_cooldown_doubles_up_to_its_maximum():
    now = [0.0]
    breaker = CircuitBreaker(1, 1.0, 5.0, clock=lambda: now[0])
    breaker.record(True)
    cooldowns = []
    for _ in range(6):
        now[0] += breaker.cooldown_s
        probe = breaker.admit()
        assert probe == PROBE
        assert breaker.record(True, probe) == CircuitBreaker.OPEN
        cooldowns.append(breaker.cooldown_s)
    assert cooldowns == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0]


def test_a_successful_probe_resets_the_cooldown_to_its_base(breaker, now):
    trip(breaker)
    breaker.record(True, start_probe(breaker, now))
    breaker.record(True, start_probe(breaker, now))
    assert breaker.cooldown_s == 4 * COOLDOWN
    breaker.record(False, start_probe(breaker, now))
    assert breaker.cooldown_s == COOLDOWN
    trip(breaker)
    opened_at = now[0]
    now[0] = opened_at + COOLDOWN
    assert breaker.admit() == PROBE  # the base cooldown applies again


def test_a_maximum_below_the_base_cooldown_keeps_the_base():
    now = [0.0]
    breaker = CircuitBreaker(1, 3.0, 1.0, clock=lambda: now[0])
    breaker.record(True)
    now[0] += 3.0
    breaker.record(True, breaker.admit())
    assert breaker.cooldown_s == 3.0


@pytest.mark.parametrize("unavailable", [False, True])
def test_outcomes_of_requests_admitted_before_opening_do_not_change_an_open_breaker(
    breaker, now, unavailable
):
    trip(breaker)
    assert [breaker.record(unavailable, ADMITTED) for _ in range(5)] == [None] * 5
    assert breaker.state == CircuitBreaker.OPEN
    assert breaker.admit() == DENIED


@pytest.mark.parametrize("unavailable", [False, True])
def test_outcomes_of_requests_admitted_before_opening_do_not_decide_a_half_open_breaker(
    breaker, now, unavailable
):
    trip(breaker)
    probe = start_probe(breaker, now)
    assert [breaker.record(unavailable, ADMITTED) for _ in range(5)] == [None] * 5
    assert breaker.state == CircuitBreaker.HALF_OPEN
    assert breaker.admit() == DENIED  # the probe is still in flight
    assert breaker.record(False, probe) == CircuitBreaker.CLOSED  # only the probe decides


def test_abandoning_the_probe_frees_the_slot_for_another(breaker, now):
    trip(breaker)
    probe = start_probe(breaker, now)
    assert breaker.admit() == DENIED
    breaker.abandon(probe)
    assert breaker.state == CircuitBreaker.HALF_OPEN
    assert breaker.admit() == PROBE
    assert breaker.admit() == DENIED


def test_abandoning_an_ordinary_request_does_not_free_the_probe_slot(breaker, now):
    trip(breaker)
    start_probe(breaker, now)
    breaker.abandon(ADMITTED)
    assert breaker.admit() == DENIED


# --- disabled -------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, -1])
def test_a_threshold_of_zero_disables_the_breaker(threshold):
    now = [0.0]
    breaker = CircuitBreaker(threshold, 1.0, 2.0, clock=lambda: now[0])
    assert not breaker.enabled
    for _ in range(50):
        assert breaker.admit() == ADMITTED
        assert breaker.record(True, ADMITTED) is None
    assert breaker.record(True, PROBE) is None
    assert breaker.state == CircuitBreaker.CLOSED
    assert breaker.admit() == ADMITTED
