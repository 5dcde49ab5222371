"""Thresholds on a session: validated by the API, judged live by the monitor (an ``abort``
threshold stops the session) and again at the end, with the results stored and shown."""

import pytest

from apps.sessions.models import LoadTestSession

from ..support.sessions import BRISK, create_session, make_target, wait_for_status
from ..support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_refuses_bad_thresholds_naming_the_field_and_the_threshold(api, counting_server):
    target = make_target(api, counting_server)
    for thresholds, message in [
        (["p95 < 500"], "Threshold 1: Unknown metric 'p95'"),
        (["p95_ms < 500", "p95_ms < nan"], "Threshold 2: 'nan' is not a number"),
        (["nope: p95_ms < 500"], "Threshold 1: unknown endpoint 'nope'"),
        ("p95_ms < 500", "Must be a list"),
        (["x" * 1_000_000], "Threshold 1: At most 200 characters."),
    ]:
        response = api.post(
            "/api/sessions/",
            {"session_name": "t", "target": target, "thresholds": thresholds},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert message in response.json()["thresholds"][0]
    assert not LoadTestSession.objects.exists()

    session_id = create_session(api, target, thresholds=["ping: p95_ms < 500 abort"])
    shown = api.get(f"/api/sessions/{session_id}/").json()
    assert shown["thresholds"] == ["ping: p95_ms < 500 abort"]
    assert shown["threshold_results"] == [] and shown["results_final_at"] is None

    # A pending session's thresholds change like any field, with history; a running one's not.
    url = f"/api/sessions/{session_id}/"
    assert api.patch(url, {"thresholds": ["rps > 1"]}, format="json").status_code == 200
    (change,) = api.get(f"{url}history/").json()["results"]
    assert (change["field"], change["new_value"]) == ("thresholds", ["rps > 1"])
    LoadTestSession.objects.filter(pk=session_id).update(status="running")
    refused = api.patch(url, {"thresholds": ["rps > 2"]}, format="json")
    assert refused.status_code == 409, refused.content


@pytest.mark.integration
def test_thresholds_are_judged_at_the_end(api, workers, counting_server, forget_redis_sessions):
    target = make_target(api, counting_server)
    session_id = create_session(
        api,
        target,
        concurrent_users=3,
        duration_minutes="0.05",  # 3 s
        thresholds=["p95_ms < 60000", "ping: failures < 1", "requests > 1e9"],
        **BRISK,
    )
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    wait_for_status(session_id)
    session = wait_until(
        lambda: LoadTestSession.objects.filter(
            pk=session_id, results_final_at__isnull=False
        ).first(),
        timeout_s=15,
    )
    assert session.status == "completed", session.end_detail
    results = api.get(f"/api/sessions/{session_id}/").json()["threshold_results"]
    assert [(r["expression"], r["passed"], r["final"]) for r in results] == [
        ("p95_ms < 60000", True, True),
        ("ping: failures < 1", True, True),
        ("requests > 1000000000", False, True),
    ]
    assert results[2]["observed"] == session.total_requests == counting_server.total
    assert 0 < results[0]["observed"] < 60000
    assert not any(result["aborted"] for result in results)


@pytest.mark.integration
def test_a_failing_abort_threshold_stops_the_session(
    api, workers, counting_server, forget_redis_sessions
):
    target = make_target(api, counting_server)
    session_id = create_session(
        api,
        target,
        concurrent_users=3,
        duration_minutes=5,
        thresholds=["requests < 30 abort", "p95_ms < 60000"],
        **BRISK,
    )
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    session = wait_for_status(session_id, timeout_s=30)

    assert session.status == "stopped"
    assert session.end_reason == "threshold_failed"
    assert "requests < 30 abort failed (observed" in session.end_detail
    assert session.events.filter(kind="threshold_failed").exists()
    session = wait_until(
        lambda: LoadTestSession.objects.filter(
            pk=session_id, results_final_at__isnull=False
        ).first(),
        timeout_s=15,
    )
    first, second = session.threshold_results
    assert (first["passed"], first["aborted"], first["final"]) == (False, True, True)
    assert first["note"].startswith("failed live at ") and first["observed"] >= 30
    assert (second["passed"], second["aborted"]) == (True, False)
    # Stopped within a few ticks of the 30th request, far short of its 5 minutes.
    assert (session.end_time - session.start_time).total_seconds() < 20


def test_the_admin_shows_each_result(client, django_user_model, api, counting_server):
    session = LoadTestSession.objects.get(
        pk=create_session(api, make_target(api, counting_server), thresholds=["rps > 5"])
    )
    result = {"expression": "rps > 5", "scope": None, "metric": "rps", "observed": 3.5,
              "passed": False, "note": "", "evaluated_at": "2026-01-01T00:00:00+00:00",
              "aborted": True, "final": True}  # fmt: skip
    LoadTestSession.objects.filter(pk=session.pk).update(
        threshold_results=[result], status="stopped"
    )
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    page = client.get(f"/admin/loadtests/loadtestsession/{session.pk}/change/")
    assert page.status_code == 200
    assert "rps &gt; 5: FAIL (observed 3.5 requests/s); stopped the session" in (
        page.content.decode()
    )
