"""The threshold syntax: what it accepts, how it judges, and clear refusals of hostile text."""

import pytest

from apps.sessions.results.figures import RunFigures
from apps.sessions.results.thresholds import (
    ThresholdError,
    judge,
    parse_threshold,
    thresholds_problems,
)


@pytest.mark.parametrize(
    ("text", "scope", "metric", "operator", "value", "abort"),
    [
        ("p95_ms < 500", None, "p95_ms", "<", 500.0, False),
        ("  p99_ms<=1200  ", None, "p99_ms", "<=", 1200.0, False),
        ("error_rate < 0.01 abort", None, "error_rate", "<", 0.01, True),
        ("rps > 100", None, "rps", ">", 100.0, False),
        ("requests >= 1e3", None, "requests", ">=", 1000.0, False),
        ("slow: p95_ms < 500", "slow", "p95_ms", "<", 500.0, False),
        ("a:b: mean_ms < .5 abort", "a:b", "mean_ms", "<", 0.5, True),
        ("café ☃: max_ms < 10", "café ☃", "max_ms", "<", 10.0, False),
        ("slow query : failures <= 0", "slow query", "failures", "<=", 0.0, False),
    ],
)
def test_accepted_thresholds(text, scope, metric, operator, value, abort):
    threshold = parse_threshold(text)
    assert (threshold.scope, threshold.metric, threshold.operator) == (scope, metric, operator)
    assert (threshold.value, threshold.abort) == (value, abort)
    assert parse_threshold(threshold.expression) == threshold  # the normal form reads back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Empty"),
        ("   ", "Empty"),
        ("p95 < 500", "Unknown metric 'p95'"),
        ("p95_ms == 500", "Unknown operator '=='"),
        ("p95_ms = 500", "Unknown operator '='"),
        ("p95_ms < -1", "must not be negative"),
        ("p95_ms < nan", "'nan' is not a number"),
        ("p95_ms < inf", "'inf' is not a number"),
        ("p95_ms < 1e309", "at most"),
        ("p95_ms < 1e13", "at most"),
        ("p95_ms < ١٢", "is not a number"),  # Arabic-Indic digits: float() would take them
        ("p95_ms < 1_000", "is not a number"),
        ("p95_ms < 0x10", "is not a number"),
        ("error_rate < 5", "fraction from 0 to 1"),
        ("p95_ms < 500 please", "Unexpected 'please'"),
        ("p95_ms < 500 abort now", "is not [ENDPOINT:] METRIC"),
        ("p95_ms", "is not [ENDPOINT:] METRIC"),
        ("< 500", "is not [ENDPOINT:] METRIC"),
        (" : p95_ms < 500", "is not [ENDPOINT:] METRIC"),
        ("p95_ms < 500\nabort", "one line"),
        ("p95_ms\u202e < 500", "one line"),
        ("x" * 201, "At most 200 characters"),
        ("x" * 2_000_000, "At most 200 characters"),
        (None, "Must be a text"),
        (500, "Must be a text"),
        (["p95_ms < 500"], "Must be a text"),
    ],
)
def test_refused_thresholds_say_why(text, message):
    with pytest.raises(ThresholdError, match=None) as caught:
        parse_threshold(text)
    assert message in str(caught.value)


def test_a_list_is_checked_item_by_item_and_against_the_endpoints():
    assert thresholds_problems(["p95_ms < 500", "ping: rps > 1"], ["ping"]) == []
    assert thresholds_problems(None) == []
    problems = thresholds_problems(["p95_ms < 500", "p95 < 1", "nope: rps > 1"], ["ping"])
    assert problems[0].startswith("Threshold 2: Unknown metric")
    assert problems[1] == "Threshold 3: unknown endpoint 'nope' (this target has: ping)."
    assert thresholds_problems("p95_ms < 500")[0].startswith("Must be a list")
    assert thresholds_problems({"a": 1})[0].startswith("Must be a list")
    assert thresholds_problems(["rps > 1"] * 51) == ["At most 50 thresholds."]


FIGURES = {
    None: RunFigures(requests=200, failures=4, duration_s=10.0, p95_ms=80.0, mean_ms=20.0),
    "slow": RunFigures(requests=50, failures=0, duration_s=10.0, p95_ms=900.0),
}


@pytest.mark.parametrize(
    ("text", "observed", "passed"),
    [
        ("p95_ms < 100", 80.0, True),
        ("p95_ms < 80", 80.0, False),
        ("p95_ms <= 80", 80.0, True),
        ("error_rate < 0.01", 0.02, False),
        ("error_rate <= 0.02", 0.02, True),
        ("rps > 10", 20.0, True),
        ("rps >= 21", 20.0, False),
        ("requests > 199", 200.0, True),
        ("failures < 4", 4.0, False),
        ("slow: p95_ms < 500", 900.0, False),
        ("slow: error_rate < 0.01", 0.0, True),
    ],
)
def test_final_judgement(text, observed, passed):
    verdict = judge(parse_threshold(text), FIGURES, final=True)
    assert verdict.observed == pytest.approx(observed)
    assert verdict.passed is passed


def test_nothing_measured_fails_at_the_end_and_waits_live():
    empty = {None: RunFigures(requests=0, failures=0, duration_s=5.0)}
    latency = parse_threshold("p95_ms < 500")
    assert judge(latency, empty, final=True).passed is False
    assert judge(latency, empty, final=False).passed is None
    # An endpoint without a row (never sent to) is judged on nothing, too.
    assert judge(parse_threshold("other: error_rate < 0.1"), FIGURES, final=True).passed is False
    # A counter's upper bound holds on nothing.
    assert judge(parse_threshold("failures < 1"), empty, final=True).passed is True


def test_live_judgement_waits_for_enough_data_and_never_fails_a_growing_lower_bound():
    live = {"final": False, "min_requests": 100}
    # 50 requests on "slow": too few to judge its p95 live.
    assert judge(parse_threshold("slow: p95_ms < 500"), FIGURES, **live).passed is None
    assert judge(parse_threshold("p95_ms < 50"), FIGURES, **live).passed is False
    # Lower bounds on what grows (requests, failures, rps) are only judged at the end.
    assert judge(parse_threshold("requests > 1000"), FIGURES, **live).passed is None
    assert judge(parse_threshold("rps > 1000"), FIGURES, **live).passed is None
    # An upper bound on a counter is final as soon as it is passed, whatever the volume.
    assert judge(parse_threshold("slow: requests < 10"), FIGURES, **live).passed is False
