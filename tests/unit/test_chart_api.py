"""GET /api/sessions/{id}/chart/: the time series bucketed on the server for the charts."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from apps.sessions.models import LoadTestSession, Target, TimeSeriesPoint

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START_S = int(START.timestamp())
DAY_S = 24 * 3600


def finished_session(seconds: int) -> LoadTestSession:
    target = Target.objects.create(name="charted", base_url="http://127.0.0.1:9")
    return LoadTestSession.objects.create(
        session_name="charted",
        target=target,
        status="completed",
        start_time=START,
        load_started_at=START,
        end_time=START + timedelta(seconds=seconds),
    )


def point(session, second: int, **fields) -> TimeSeriesPoint:
    return TimeSeriesPoint(session=session, timestamp=START + timedelta(seconds=second), **fields)


def test_buckets_average_rates_keep_latency_peaks_and_leave_gaps_null(viewer_api):
    session = finished_session(seconds=8)
    TimeSeriesPoint.objects.bulk_create(
        [
            point(session, 0, requests=10, failures=2, p50_ms=5, p95_ms=9, p99_ms=10, users=4,
                  failures_by_class={"http_5xx": 2}),
            point(session, 1, requests=30, failures=0, p50_ms=6, p95_ms=50, p99_ms=80, users=6,
                  failures_by_class={}),
            # seconds 2-3 have no data; 4-5 only requests (no monitor tick landed there)
            point(session, 4, requests=8, failures=4, failures_by_class={"network": 4}),
            point(session, 5, requests=8),
        ]
    )  # fmt: skip
    response = viewer_api.get(f"/api/sessions/{session.pk}/chart/", {"points": 4})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["from"] == START_S and body["to"] == START_S + 8 and body["bucket_s"] == 2
    assert body["t"] == [START_S, START_S + 2, START_S + 4, START_S + 6]
    assert body["rps"] == [20.0, None, 8.0, None]
    assert body["failures_per_s"] == [1.0, None, 2.0, None]
    assert body["p95_ms"] == [50, None, None, None]  # the bucket's maximum
    assert body["p99_ms"] == [80, None, None, None]
    assert body["users"] == [5.0, None, None, None]  # the mean
    assert body["failures_by_class"] == {
        "http_5xx": [1.0, None, 0.0, None],
        "network": [0.0, None, 2.0, None],
    }


def test_a_running_sessions_chart_ends_at_its_last_ticked_second(viewer_api):
    """The seconds after the monitor's last tick are still filling (part of their requests,
    no users yet): the chart leaves them to the stream rather than draw a drop and a gap."""
    session = finished_session(seconds=10)
    LoadTestSession.objects.filter(pk=session.pk).update(status="running", end_time=None)
    TimeSeriesPoint.objects.bulk_create(
        [point(session, second, requests=10, users=4, p50_ms=5) for second in range(5)]
        + [point(session, 5, requests=3)]  # the current second: a tick has not come yet
    )
    chart = viewer_api.get(f"/api/sessions/{session.pk}/chart/").json()
    assert chart["t"] == [START_S + second for second in range(5)]
    assert chart["users"] == [4] * 5 and chart["rps"] == [10.0] * 5
    # Asked for explicitly, the filling second is there, as stored.
    asked = viewer_api.get(f"/api/sessions/{session.pk}/chart/", {"to": START_S + 6}).json()
    assert asked["rps"][-1] == 3.0 and asked["users"][-1] is None


def test_a_range_fetches_finer_grain(viewer_api):
    session = finished_session(seconds=3600)
    TimeSeriesPoint.objects.bulk_create(
        [point(session, second, requests=second) for second in range(3600)]
    )
    whole = viewer_api.get(f"/api/sessions/{session.pk}/chart/", {"points": 60}).json()
    assert whole["bucket_s"] == 60 and len(whole["t"]) == 60
    zoomed = viewer_api.get(
        f"/api/sessions/{session.pk}/chart/",
        {"from": START_S + 600, "to": (START + timedelta(seconds=660)).isoformat()},
    ).json()
    assert zoomed["bucket_s"] == 1 and len(zoomed["t"]) == 60
    assert zoomed["rps"][:3] == [600.0, 601.0, 602.0]


def test_a_day_of_points_answers_at_most_the_points_asked_for_quickly(viewer_api):
    session = finished_session(seconds=DAY_S)
    TimeSeriesPoint.objects.bulk_create(
        (
            point(session, second, requests=100, failures=second % 2, p50_ms=3.0,
                  p95_ms=7.0 + (second == 50_000) * 500, p99_ms=9.0, users=50,
                  failures_by_class={"http_5xx": 1} if second % 2 else {})
            for second in range(DAY_S)
        ),
        batch_size=5000,
    )  # fmt: skip
    # This process's CPU time: what the answer costs, whatever else shares the machine (the
    # parallel test processes do).
    started = time.process_time()
    response = viewer_api.get(f"/api/sessions/{session.pk}/chart/")
    took_s = time.process_time() - started
    body = response.json()
    print(f"86,400 points -> {len(body['t'])} buckets in {took_s:.3f} s")
    assert response.status_code == 200
    assert len(body["t"]) <= 1000 and body["bucket_s"] == 87
    for column in ("rps", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "users"):
        assert len(body[column]) == len(body["t"])
    assert body["rps"][0] == 100.0 and body["users"][0] == 50.0
    assert max(body["p95_ms"]) == 507.0  # one slow second stays visible in a day
    assert len(body["failures_by_class"]["http_5xx"]) == len(body["t"])
    assert took_s < 3.0  # "well under 1 s" is measured precisely in bench


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"points": "0"}, "points"),
        ({"points": "2001"}, "points"),
        ({"points": "many"}, "points"),
        ({"from": "yesterday"}, "from"),
        ({"to": "1e400"}, "to"),
        ({"from": START_S + 10, "to": START_S}, "to"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(viewer_api, params, field):
    session = finished_session(seconds=60)
    response = viewer_api.get(f"/api/sessions/{session.pk}/chart/", params)
    assert response.status_code == 400
    assert field in response.json()


def test_anonymous_callers_are_refused(client):
    session = finished_session(seconds=60)
    assert client.get(f"/api/sessions/{session.pk}/chart/").status_code in (401, 403)
