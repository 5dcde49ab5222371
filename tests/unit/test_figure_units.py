"""Units on every figure a machine-facing output writes: the wording helper itself, a
failed threshold's JUnit message, the CLI's summary and its table against a baseline (with
the configuration differences and no verdict between runs of different load)."""

import xml.etree.ElementTree as ET

import pytest

from apps.sessions.cli.reports import baseline_table, summary, write_junit
from apps.sessions.models import LoadTestSession, Target
from apps.sessions.results import comparison, units

from ..support.sessions import finished_session


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("p95_ms", 9.823, "9.823 ms"),
        ("p50_ms", 1234.56, "1,234.56 ms"),
        ("error_rate", 0.021, "2.1 %"),
        ("error_rate", 0.0, "0 %"),
        ("error_rate", 0.0000004, "0.00004 %"),
        ("rps", 42.5, "42.5 requests/s"),
        ("rps", 3.5, "3.5 requests/s"),
        ("rps", 0.25, "0.25 requests/s"),
        ("rps", 62.64, "62.64 requests/s"),
        ("requests", 1234.0, "1,234 requests"),
        ("failures", 3.0, "3 failures"),
        ("max_ms", None, "n/a"),
    ],
)
def test_each_figure_is_written_with_its_unit(metric, value, text):
    assert units.figure(metric, value) == text


@pytest.mark.parametrize(
    ("metric", "before", "after", "text"),
    [
        ("p50_ms", 123.8, 165.9, "p50 up 34 % (+42.1 ms)"),
        ("p95_ms", 100.0, 103.0, "p95 up 3 % (+3.00 ms)"),
        ("rps", 28.3, 24.9, "requests/s down 12 % (-3.4 /s)"),
        ("error_rate", 0.004, 0.025, "error rate up 2.1 points (0.4 % → 2.5 %)"),
        ("p99_ms", 0.0, 5.0, "p99 up from 0 (+5.00 ms, now 5.00 ms)"),
        ("p99_ms", 5.0, 5.0, "p99 unchanged (5.00 ms)"),
    ],
)
def test_a_change_is_said_in_words_with_units(metric, before, after, text):
    assert units.change(metric, before, after) == text


@pytest.fixture
def target(db):
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


def judged(session: LoadTestSession, results: list[dict]) -> LoadTestSession:
    rows = [
        {"scope": None, "note": "", "evaluated_at": "", "aborted": False, "final": True, **r}
        for r in results
    ]
    LoadTestSession.objects.filter(pk=session.pk).update(threshold_results=rows)
    session.refresh_from_db()
    return session


RESULTS = [
    {"expression": "p95_ms < 5", "metric": "p95_ms", "observed": 9.823, "passed": False},
    {"expression": "error_rate < 0.01", "metric": "error_rate", "observed": 0.021,
     "passed": False},
    {"expression": "rps > 100", "metric": "rps", "observed": 42.5, "passed": False},
    {"expression": "requests > 10", "metric": "requests", "observed": 200.0, "passed": True},
]  # fmt: skip


def test_a_failed_thresholds_junit_message_carries_the_unit(target, tmp_path):
    session = judged(finished_session(target), RESULTS)
    path = tmp_path / "junit.xml"
    write_junit(path, session)
    messages = [f.get("message") for f in ET.parse(path).getroot().iter("failure")]
    assert messages == [
        "p95_ms < 5: observed 9.823 ms",
        "error_rate < 0.01: observed 2.1 %",
        "rps > 100: observed 42.5 requests/s",
    ]


def test_the_cli_summary_writes_units_in_headings_and_verdicts(target):
    text = summary(judged(finished_session(target), RESULTS))
    assert "requests/s" in text.splitlines()[2] and "p95 ms" in text.splitlines()[2]
    assert "FAIL  p95_ms < 5         observed 9.823 ms" in text
    assert "PASS  requests > 10      observed 200 requests" in text


def test_the_cli_summary_counts_apart_what_the_stop_cut_and_what_never_arrived(target):
    session = finished_session(target)
    assert "Counted apart" not in summary(session)  # nothing to count apart: no line
    session.endpoint_stats.update(cut_by_stop=3, unreached=2)
    received = session.total_requests - 2
    assert (
        "Counted apart: 3 cut by the stop (not failures), 2 never reached the target "
        f"(refused, connect timeout, DNS); the target received {received:,} requests."
    ) in summary(session)


def test_the_baseline_table_lists_the_load_difference_and_judges_nothing(target, settings):
    settings.THRESHOLD_MIN_REQUESTS = 10
    baseline = finished_session(target, "base", endpoints={"ping": ([5.0] * 200, {})})
    LoadTestSession.objects.filter(pk=baseline.pk).update(concurrent_users=20)
    slower = finished_session(target, "more", endpoints={"ping": ([50.0] * 200, {})})
    LoadTestSession.objects.filter(pk=slower.pk).update(concurrent_users=40)
    slower.refresh_from_db()
    against = comparison.against_baseline(slower, LoadTestSession.objects.get(pk=baseline.pk))
    assert against["regression"] is False and against["verdict"] == "not judged"
    table = baseline_table(against)
    assert "Configuration (baseline → this run):\n  users: 20 → 40" in table
    assert table.endswith(
        "Not judged against the baseline: users differ: 20 → 40; a verdict needs runs of "
        "the same load."
    )
    assert "Regressions:" not in table and "p95_ms" not in table

    # The same load: judged, with reasons in words and units.
    LoadTestSession.objects.filter(pk=slower.pk).update(concurrent_users=20)
    slower.refresh_from_db()
    same = comparison.against_baseline(slower, LoadTestSession.objects.get(pk=baseline.pk))
    assert same["verdict"] == "regression"
    assert "  all endpoints: p50 up 900 % (+45.0 ms)" in baseline_table(same)
