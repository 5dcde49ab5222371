"""Invalid configuration is refused with a 400 naming the field, and nothing is stored."""

import pytest

from apps.sessions.models import Endpoint, LoadTestSession, Target

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(db):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="slow", url="/performance/slow")
    Endpoint.objects.create(target=target, name="error", url="/performance/error")
    return target


def valid_config(target_obj, **changes):
    return {
        "session_name": "nightly",
        "target": target_obj.pk,
        "concurrent_users": 10,
        "duration_minutes": "0.25",
        "request_interval_min": 1.0,
        "request_interval_max": 5.0,
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"concurrent_users": -5}, "concurrent_users"),
        ({"concurrent_users": 0}, "concurrent_users"),
        ({"concurrent_users": "many"}, "concurrent_users"),
        ({"request_interval_min": 6.0, "request_interval_max": 5.0}, "request_interval_min"),
        ({"request_interval_min": -1}, "request_interval_min"),
        ({"duration_minutes": "-1"}, "duration_minutes"),
        ({"endpoint_weights": {"nope": 1.0}}, "endpoint_weights"),
        ({"endpoint_weights": {"slow": -1}}, "endpoint_weights"),
        ({"endpoint_weights": {"slow": 0, "error": 0}}, "endpoint_weights"),
        ({"endpoint_weights": ["slow"]}, "endpoint_weights"),
        ({"max_errors_per_minute": -3}, "max_errors_per_minute"),
        ({"target": 999999}, "target"),
        ({"session_name": ""}, "session_name"),
    ],
)
def test_invalid_session_config_is_refused_and_nothing_stored(api, target, changes, field):
    response = api.post("/api/sessions/", valid_config(target, **changes), format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert LoadTestSession.objects.count() == 0


def test_valid_config_is_stored_with_seed_defaults(api, target):
    response = api.post(
        "/api/sessions/", {"session_name": "defaults", "target": target.pk}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["concurrent_users"] == 10
    assert body["duration_minutes"] == "30.0000"
    assert (body["request_interval_min"], body["request_interval_max"]) == (1.0, 5.0)
    assert body["max_errors_per_minute"] == 100
    assert body["enable_logging"] is True
    assert body["created_by"] == "olivia"


def test_session_without_target_uses_the_default_catalog(api, settings):
    settings.TARGET_APP_URL = "http://localhost:5001"
    response = api.post(
        "/api/sessions/",
        {"session_name": "default", "endpoint_weights": {"error": 2.0}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    target = Target.objects.get(pk=response.json()["target"])
    assert target.base_url == "http://localhost:5001"
    paths = set(target.endpoints.values_list("url", flat=True))
    assert {
        "/performance/error",
        "/performance/slow-query/full-scan",
        "/performance/slow-query/complex-join",
    } <= paths


def test_unknown_weight_name_against_default_catalog_creates_nothing(api, settings):
    settings.TARGET_APP_URL = "http://localhost:5001"
    response = api.post(
        "/api/sessions/", {"session_name": "x", "endpoint_weights": {"nope": 1}}, format="json"
    )
    assert response.status_code == 400
    assert "endpoint_weights" in response.json()
    assert Target.objects.count() == 0
    assert LoadTestSession.objects.count() == 0


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/",
        "http://localhost.evil.example/",
        "http://127.0.0.1@evil.example/",
        "ftp://localhost/",
        "not a url",
    ],
)
def test_target_off_the_allow_list_is_refused(admin_api, base_url):
    response = admin_api.post("/api/targets/", {"name": "bad", "base_url": base_url}, format="json")
    assert response.status_code == 400
    assert "base_url" in response.json()
    assert Target.objects.count() == 0


def test_target_host_removed_from_allow_list_cannot_be_used(api, target, settings):
    settings.ALLOWED_TARGET_HOSTS = ["localhost"]
    response = api.post("/api/sessions/", valid_config(target), format="json")
    assert response.status_code == 400
    assert "target" in response.json()
    assert LoadTestSession.objects.count() == 0


def test_start_rechecks_the_allow_list(api, target, settings):
    created = api.post("/api/sessions/", valid_config(target), format="json")
    settings.ALLOWED_TARGET_HOSTS = ["localhost"]
    response = api.post(f"/api/sessions/{created.json()['id']}/start/")
    assert response.status_code == 400
    assert "target" in response.json()
    assert LoadTestSession.objects.get().status == "pending"


def test_start_rechecks_a_custom_host_header(api, target, settings):
    Endpoint.objects.filter(name="slow").update(headers={"Host": "localhost:5001"})
    created = api.post("/api/sessions/", valid_config(target), format="json")
    assert created.status_code == 201, created.json()
    settings.ALLOWED_TARGET_HOSTS = ["127.0.0.1:5001"]
    response = api.post(f"/api/sessions/{created.json()['id']}/start/")
    assert response.status_code == 400
    assert "'localhost:5001'" in " ".join(response.json()["endpoints"])
    assert LoadTestSession.objects.get().status == "pending"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "//evil.example/x"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"weight": -1}, "weight"),
        ({"timeout": 0}, "timeout"),
        ({"method": "FETCH"}, "method"),
        ({"headers": {"X-Token": 5}}, "headers"),
        ({"headers": {"X-Token": "a\r\nSet-Cookie: x=1"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": ["X-Token"]}, "headers"),
        ({"name": "slow"}, "non_field_errors"),
    ],
)
def test_invalid_endpoint_is_refused(admin_api, target, changes, field):
    body = {"target": target.pk, "name": "new", "url": "/x", **changes}
    response = admin_api.post("/api/endpoints/", body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Endpoint.objects.count() == 2


def test_anonymous_client_is_refused(client, target):
    assert client.get("/api/sessions/").status_code in (401, 403)
    assert client.post("/api/sessions/", {}).status_code in (401, 403)


def test_weight_overflowing_to_infinity_is_refused(api, target):
    # 1e309 is valid JSON but parses to float("inf"): it must not reach the selector.
    body = f'{{"session_name": "x", "target": {target.pk}, "endpoint_weights": {{"slow": 1e309}}}}'
    response = api.post("/api/sessions/", body, content_type="application/json")
    assert response.status_code == 400
    assert "endpoint_weights" in response.json()
    assert LoadTestSession.objects.count() == 0
