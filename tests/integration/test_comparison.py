"""Comparing runs, checked against known runs: real sessions on the real workers against a
counting server, one fast and healthy, one slow with a failing endpoint. The comparison's
figures must be the counted ones, and its deltas and regressions those the change implies;
then the baseline of a target, who may set it, and what a session shows against it."""

import pytest

from apps.sessions.models import ConfigChange, LoadTestSession, Target

from ..support.sessions import BRISK, create_session, make_target
from ..support.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("forget_redis_sessions"),
]

RUN = {"concurrent_users": 8, "duration_minutes": 0.05, "max_errors_per_minute": 0, **BRISK}
SLOW_S = 0.1


def run_to_the_end(api, target_id: int, server) -> tuple[int, dict[str, int]]:
    """Run a 3 s session to its final figures; its id and the requests the server counted
    for it, by path."""
    before = dict(server.counts)
    session_id = create_session(api, target_id, **RUN)
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    wait_until(
        lambda: LoadTestSession.objects.get(pk=session_id).results_final_at, 60, what="final"
    )
    return session_id, {path: server.count(path) - before.get(path, 0) for path in server.counts}


@pytest.fixture
def two_runs(api, workers, counting_server, settings):
    """A fast, healthy run, then one where every answer takes SLOW_S and /flaky answers 500."""
    settings.THRESHOLD_MIN_REQUESTS = 20  # judged on a 3 s run's few hundred requests
    endpoints = (("ping", "/ping", 1.0), ("flaky", "/flaky", 1.0))
    target_id = make_target(api, counting_server, endpoints)
    fast, fast_counts = run_to_the_end(api, target_id, counting_server)
    counting_server.delay_s = SLOW_S
    counting_server.statuses["/flaky"] = 500
    slow, slow_counts = run_to_the_end(api, target_id, counting_server)
    return target_id, (fast, fast_counts), (slow, slow_counts)


def scope_rows(result, endpoint):
    (scope,) = [scope for scope in result["scopes"] if scope["endpoint"] == endpoint]
    return scope["rows"]


def test_comparison_figures_deltas_and_regressions_of_known_runs(two_runs, viewer_api):
    _, (fast, fast_counts), (slow, slow_counts) = two_runs
    response = viewer_api.get(f"/api/sessions/compare/?ids={fast},{slow}")
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["reference"] == fast and result["margin_pct"] == 10.0
    assert [scope["endpoint"] for scope in result["scopes"]] == [None, "flaky", "ping"]

    # The figures are the counted ones; requests/s over each load's own duration.
    for session_id, counts in ((fast, fast_counts), (slow, slow_counts)):
        session = LoadTestSession.objects.get(pk=session_id)
        for endpoint, path in (("ping", "/ping"), ("flaky", "/flaky")):
            (row,) = [r for r in scope_rows(result, endpoint) if r["session"] == session_id]
            assert row["figures"]["requests"] == counts[path] > 0
            duration_s = session.duration_s()
            assert row["figures"]["duration_s"] == pytest.approx(duration_s, abs=0.001)
            assert row["figures"]["rps"] == round(counts[path] / duration_s, 2)  # as shown
        (whole,) = [r for r in scope_rows(result, None) if r["session"] == session_id]
        assert whole["figures"]["requests"] == session.total_requests == sum(counts.values())

    fast_all, slow_all = scope_rows(result, None)
    fast_ping, slow_ping = scope_rows(result, "ping")
    _, slow_flaky = scope_rows(result, "flaky")
    assert fast_all["deltas"] is None and fast_all["note"] == "reference"
    assert fast_all["figures"]["error_rate"] == 0.0
    assert fast_ping["figures"]["p50_ms"] < SLOW_S * 1000 <= slow_ping["figures"]["p50_ms"]
    # Every /flaky answer was a 500, and only those failed.
    assert slow_flaky["figures"]["error_rate"] == 1.0
    assert slow_flaky["figures"]["error_rate_by_class"] == {"http_5xx": 1.0}
    assert slow_ping["figures"]["error_rate"] == 0.0
    assert slow_all["figures"]["error_rate"] == pytest.approx(
        slow_counts["/flaky"] / sum(slow_counts.values()), abs=1e-6
    )

    p50 = slow_ping["deltas"]["p50_ms"]
    before, after = fast_ping["figures"]["p50_ms"], slow_ping["figures"]["p50_ms"]
    assert p50["direction"] == "worse"
    assert p50["absolute"] == pytest.approx(after - before, abs=1e-3)
    assert p50["relative"] == pytest.approx((after - before) / before, rel=1e-3)
    assert {"p50_ms", "p95_ms"} <= set(slow_ping["regressed"])
    assert "error_rate" not in slow_ping["regressed"]
    error_rate = slow_flaky["deltas"]["error_rate"]
    assert error_rate["relative"] is None and error_rate["absolute"] == 1.0  # from 0
    assert "error_rate" in slow_flaky["regressed"]
    assert slow_flaky["error_rate_by_class"]["http_5xx"]["direction"] == "worse"
    assert {"p50_ms", "p95_ms", "error_rate"} <= set(slow_all["regressed"])

    fast_summary, slow_summary = result["sessions"]
    assert fast_summary["is_reference"] and fast_summary["regression"] is False
    assert slow_summary["regression"] is True
    texts = [entry["text"] for entry in slow_summary["regressions"]]
    # In words with units, never a field name: "ping: p95 up 1,900 % (+95.2 ms)".
    assert any(text.startswith("ping: p95 up ") and text.endswith(" ms)") for text in texts), texts

    # The other way round, the slow run is the reference and the fast one regressed nowhere.
    reverse = viewer_api.get(f"/api/sessions/compare/?ids={slow},{fast}").json()
    assert reverse["sessions"][1]["regression"] is False
    assert scope_rows(reverse, "ping")[1]["deltas"]["p95_ms"]["direction"] == "better"


def test_distribution_gives_the_percentile_curve_and_any_quantile(two_runs, viewer_api):
    _, _, (slow, slow_counts) = two_runs
    response = viewer_api.get(f"/api/sessions/{slow}/distribution/?q=0.5,0.999")
    assert response.status_code == 200, response.json()
    endpoints = {entry["endpoint"]: entry for entry in response.json()["endpoints"]}
    assert set(endpoints) == {None, "ping", "flaky"}
    assert endpoints[None]["recorded"] == sum(slow_counts.values())
    curve = endpoints["ping"]["curve"]
    assert curve[0][0] == 0 and curve[-1][0] == 1.0
    latencies = [ms for _, ms in curve]
    assert latencies == sorted(latencies) and latencies[0] >= SLOW_S * 1000
    assert endpoints["ping"]["quantiles"]["0.5"] >= SLOW_S * 1000
    assert endpoints["ping"]["quantiles"]["0.999"] >= endpoints["ping"]["quantiles"]["0.5"]
    bad = viewer_api.get(f"/api/sessions/{slow}/distribution/?q=1.5")
    assert bad.status_code == 400 and "q" in bad.json()


def test_baseline_roles_deltas_history_and_deletion(two_runs, api, viewer_api):
    target_id, (fast, _), (slow, _) = two_runs
    refused = viewer_api.post(f"/api/sessions/{fast}/baseline/")
    assert refused.status_code == 403
    assert Target.objects.get(pk=target_id).baseline_session is None

    answer = api.post(f"/api/sessions/{fast}/baseline/")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["baseline_session"] == fast
    change = ConfigChange.objects.get(object_type="target", object_id=target_id)
    assert (change.field, change.old_value, change.new_value) == ("baseline_session_id", None, fast)
    assert change.changed_by.username == "olivia" and change.via == "api"

    # The later run shows its deltas against the baseline, and that it regressed.
    shown = viewer_api.get(f"/api/sessions/{slow}/").json()["baseline_comparison"]
    assert shown["baseline"] == fast and shown["regression"] is True
    assert {(entry["endpoint"], entry["metric"]) for entry in shown["regressions"]} >= {
        ("ping", "p95_ms"),
        ("flaky", "error_rate"),
    }
    assert viewer_api.get(f"/api/sessions/{fast}/").json()["baseline_comparison"] is None
    listed = viewer_api.get("/api/sessions/").json()["results"]
    assert all("baseline_comparison" not in session for session in listed)

    not_it = api.delete(f"/api/sessions/{slow}/baseline/")
    assert not_it.status_code == 409
    assert f"session {fast} is" in not_it.json()["detail"]
    assert viewer_api.delete(f"/api/sessions/{fast}/baseline/").status_code == 403
    cleared = api.delete(f"/api/sessions/{fast}/baseline/")
    assert cleared.status_code == 200 and cleared.json()["baseline_session"] is None
    assert viewer_api.get(f"/api/sessions/{slow}/").json()["baseline_comparison"] is None

    # Deleting the baseline session leaves the target without one, and nothing breaks.
    assert api.post(f"/api/sessions/{fast}/baseline/").status_code == 200
    assert api.delete(f"/api/sessions/{fast}/").status_code == 204
    assert Target.objects.get(pk=target_id).baseline_session is None
    after = viewer_api.get(f"/api/sessions/{slow}/")
    assert after.status_code == 200 and after.json()["baseline_comparison"] is None
