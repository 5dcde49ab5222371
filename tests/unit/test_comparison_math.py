"""The comparison's arithmetic on hand-made figures: deltas, directions, the margin and the
absolute floors that keep tiny numbers from being regressions, and its query parameters."""

import math

import pytest
from rest_framework.exceptions import ValidationError

from apps.sessions.api import comparison_params
from apps.sessions.models import EndpointStats
from apps.sessions.results.comparison import compare_scope, delta
from apps.sessions.results.figures import scope_figures
from apps.workers.histogram import bucket_index


def figures(**values):
    base = {"requests": 1000, "failures": 0, "duration_s": 10.0, "rps": 100.0,
            "error_rate": 0.0, "error_rate_by_class": {}, "p50_ms": 10.0, "p95_ms": 20.0,
            "p99_ms": 40.0}  # fmt: skip
    return {**base, **values}


def test_lower_latency_is_better_and_higher_is_worse_with_absolute_and_relative_deltas():
    worse = delta("p95_ms", 20.0, 30.0, margin_pct=10)
    assert worse == {"absolute": 10.0, "relative": 0.5, "direction": "worse", "regressed": True}
    better = delta("p95_ms", 20.0, 15.0, margin_pct=10)
    assert better == {"absolute": -5.0, "relative": -0.25, "direction": "better",
                      "regressed": False}  # fmt: skip


def test_higher_rps_is_better_and_a_drop_beyond_the_margin_regresses():
    assert delta("rps", 100.0, 120.0, 10)["direction"] == "better"
    assert delta("rps", 100.0, 95.0, 10) == {
        "absolute": -5.0, "relative": -0.05, "direction": "worse", "regressed": False,
    }  # fmt: skip
    assert delta("rps", 100.0, 85.0, 10)["regressed"] is True


def test_the_margin_is_a_percentage_of_the_reference():
    assert delta("p50_ms", 100.0, 109.0, 10)["regressed"] is False
    assert delta("p50_ms", 100.0, 111.0, 10)["regressed"] is True
    assert delta("p50_ms", 100.0, 111.0, 20)["regressed"] is False
    assert delta("p50_ms", 100.0, 100.5, 0)["regressed"] is False  # within 0.5 %: same


def test_changes_within_half_a_percent_are_the_same():
    assert delta("p99_ms", 200.0, 200.9, 10)["direction"] == "same"
    assert delta("rps", 0.0, 0.0, 10) == {"absolute": 0.0, "relative": None, "direction": "same",
                                          "regressed": False}  # fmt: skip


def test_an_error_rate_from_zero_is_no_infinite_regression_below_one_point():
    small = delta("error_rate", 0.0, 0.001, margin_pct=10)
    assert small["relative"] is None  # no relative change from 0, rather than 'inf %'
    assert small["direction"] == "worse" and small["regressed"] is False
    assert delta("error_rate", 0.0, 0.02, margin_pct=10)["regressed"] is True


def test_an_error_rate_must_rise_by_the_margin_and_by_more_than_one_point():
    assert delta("error_rate", 0.20, 0.215, 10)["regressed"] is False  # +7.5 %
    assert delta("error_rate", 0.02, 0.029, 10)["regressed"] is False  # +45 % but 0.9 pp
    assert delta("error_rate", 0.02, 0.035, 10)["regressed"] is True


def test_sub_millisecond_latency_changes_are_not_regressions():
    change = delta("p99_ms", 0.4, 0.9, 10)
    assert change["direction"] == "worse" and change["relative"] == 1.25
    assert change["regressed"] is False
    assert delta("p99_ms", 0.4, 1.6, 10)["regressed"] is True


def test_missing_values_have_no_delta():
    assert delta("p95_ms", None, 3.0, 10) == {"absolute": None, "relative": None,
                                              "direction": None, "regressed": False}  # fmt: skip


def test_a_scope_with_too_few_requests_is_shown_but_not_judged():
    reference, slow = figures(requests=50), figures(requests=50, p95_ms=200.0)
    scope = compare_scope(reference, slow, margin_pct=10, min_requests=100)
    assert scope["judged"] is False and scope["regressed"] == []
    assert scope["deltas"]["p95_ms"]["direction"] == "worse"
    assert "fewer than 100 requests" in scope["note"]
    judged = compare_scope(figures(), figures(p95_ms=200.0, rps=50.0), 10, 100)
    assert judged["judged"] is True and judged["regressed"] == ["rps", "p95_ms"]


def test_error_rates_by_class_have_deltas_but_are_not_judged():
    reference = figures(error_rate=0.0, error_rate_by_class={})
    failing = figures(error_rate=0.5, error_rate_by_class={"http_5xx": 0.5})
    scope = compare_scope(reference, failing, 10, 100)
    assert scope["error_rate_by_class"]["http_5xx"]["absolute"] == 0.5
    assert scope["error_rate_by_class"]["http_5xx"]["direction"] == "worse"
    assert scope["error_rate_by_class"]["http_5xx"]["regressed"] is False
    assert scope["regressed"] == ["error_rate"]


def test_an_endpoint_only_in_one_run_has_no_deltas():
    assert compare_scope(None, figures(), 10, 100)["note"] == "not in the reference run"
    assert compare_scope(figures(), None, 10, 100)["note"] == "not in this run"


def row(name, latencies_ms, failures_by_class=None):
    histogram: dict[str, int] = {}
    for ms in latencies_ms:
        index = str(bucket_index(int(ms * 1000)))
        histogram[index] = histogram.get(index, 0) + 1
    failures = sum((failures_by_class or {}).values())
    return EndpointStats(name=name, requests=len(latencies_ms), failures=failures,
                         failures_by_class=failures_by_class or {}, histogram=histogram,
                         min_ms=min(latencies_ms), max_ms=max(latencies_ms),
                         mean_ms=sum(latencies_ms) / len(latencies_ms))  # fmt: skip


def test_figures_of_merge_the_endpoints_histograms_and_count_failures_by_class():
    fast = row("fast", [1.0] * 90, {"http_5xx": 9})
    slow = row("slow", [100.0] * 10, {"timeout": 1})
    merged = scope_figures([fast, slow], duration_s=4.0).as_dict()
    assert merged["requests"] == 100 and merged["rps"] == 25.0
    assert merged["error_rate"] == 0.1
    assert merged["error_rate_by_class"] == {"http_5xx": 0.09, "timeout": 0.01}
    # The merged distribution: 90 % at 1 ms, the slowest 10 % at 100 ms (0.4 % resolution).
    assert merged["p50_ms"] == pytest.approx(1.0, rel=0.005)
    assert merged["p95_ms"] == pytest.approx(100.0, rel=0.005)
    assert merged["p99_ms"] == pytest.approx(100.0, rel=0.005)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "comma-separated list"),
        ("", "comma-separated list"),
        ("1", "Give 2 to 10 session ids, not 1."),
        ("1,2,3,4,5,6,7,8,9,10,11", "not 11"),
        ("1,1", "Session 1 is listed twice."),
        ("1,x", "'x' is not a session id"),
        ("1,-2", "'-2' is not a session id"),
        ("1,2.5", "'2.5' is not a session id"),
        ("1,\uff10", "is not a session id"),  # a full-width digit zero
        ("1," + "9" * 30, "is not a session id"),
        ("1,2," + "3" * 300, "At most 200 characters."),
        ("1,,2", "'' is not a session id"),
    ],
)
def test_bad_ids_are_refused_naming_the_parameter(raw, message):
    with pytest.raises(ValidationError) as refused:
        comparison_params.parse_session_ids(raw)
    assert message in str(refused.value.detail["ids"][0])


def test_good_ids_keep_their_order():
    assert comparison_params.parse_session_ids(" 3, 1 ,2") == [3, 1, 2]


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "1001", "ten", "1" * 40])
def test_bad_margins_are_refused(raw):
    with pytest.raises(ValidationError) as refused:
        comparison_params.parse_margin(raw)
    assert "percentage from 0 to 1000" in str(refused.value.detail["margin_pct"][0])


@pytest.mark.parametrize("raw", ["nan", "1.5", "-0.1", "x", "0.5,", "inf", "1e400"])
def test_bad_quantiles_are_refused(raw):
    with pytest.raises(ValidationError) as refused:
        comparison_params.parse_quantiles(raw)
    assert "q" in refused.value.detail


def test_quantiles_are_parsed_once_each():
    assert comparison_params.parse_quantiles("0.999,0.5,0.999") == [0.999, 0.5]
    assert comparison_params.parse_quantiles(None) == []
    assert math.isclose(comparison_params.parse_margin("12.5"), 12.5)
    with pytest.raises(ValidationError):
        comparison_params.parse_quantiles(",".join(["0.5"] * 21))


def test_small_rates_keep_the_decimals_that_tell_them_apart():
    from apps.sessions.dashboard.tables import change_text, value_text

    assert value_text("rps", 1234.56) == "1,234.6/s"
    assert value_text("rps", 0.2345) == "0.23/s"
    assert change_text("rps", {"absolute": -0.034, "relative": -0.225}) == "-0.034/s (-22.5 %)"
    assert change_text("rps", {"absolute": 0.0, "relative": 0.0}) == "+0.0/s (+0.0 %)"
