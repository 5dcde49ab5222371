"""Who may do what: every API route refuses anonymous clients, and each role is allowed and
refused exactly where it should be (viewer reads, operator runs sessions, admin owns the
catalog and the emergency stop)."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from apps.sessions.models import Endpoint, LoadTestSession, Target

pytestmark = pytest.mark.django_db

# The one route that must answer strangers: it is where they exchange a password for a token.
PUBLIC_API_ROUTES = {"/api/auth/token/"}


def api_paths(patterns=None, prefix="") -> set[str]:
    """Every route of the URL configuration under /api/, with sample values in its
    parameters (an id of 1, a format of json)."""
    paths = set()
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + _concrete(str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            paths |= api_paths(pattern.url_patterns, text)
        elif isinstance(pattern, URLPattern) and text.startswith("api/"):
            paths.add("/" + text)
    return paths


def _concrete(pattern: str) -> str:
    pattern = re.sub(r"<drf_format_suffix:\w+>", ".json", pattern)
    pattern = re.sub(r"\(\?P<format>[^)]*\)", "json", pattern)
    pattern = re.sub(r"\(\?P<\w+>[^)]*\)", "1", pattern)
    pattern = re.sub(r"<(?:\w+:)?\w+>", "1", pattern)
    return pattern.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")


def test_the_sweep_sees_every_kind_of_route():
    paths = api_paths()
    assert {"/api/sessions/", "/api/sessions/1/start/", "/api/emergency-stop/",
            "/api/workers/", "/api/schema/", "/api/docs/", "/api/sessions/1/events/",
            "/api/audit/", "/api/sessions/1/export/"} <= paths  # fmt: skip
    assert len(paths) > 30


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_api_route_refuses_an_anonymous_client(method):
    client = APIClient()
    for path in sorted(api_paths() - PUBLIC_API_ROUTES):
        response = getattr(client, method)(path)
        assert response.status_code in (401, 403), (method, path, response.status_code)


def test_the_token_route_gives_nothing_without_credentials():
    response = APIClient().post("/api/auth/token/", {"username": "x", "password": "y"})
    assert response.status_code == 400
    assert "token" not in response.json()


@pytest.fixture
def catalog(db):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    endpoint = Endpoint.objects.create(target=target, name="slow", url="/performance/slow")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    return target, endpoint, session


NEW_SESSION = {"session_name": "new", "concurrent_users": 2}


@pytest.mark.parametrize(
    ("persona", "allowed"),
    [
        ("viewer_api", {"read"}),
        ("api", {"read", "create_session", "edit_session", "stop_session", "delete_session",
                 "session_webhooks"}),
        ("admin_api", {"read", "create_session", "edit_session", "stop_session",
                       "delete_session", "catalog", "emergency_stop", "audit",
                       "session_webhooks", "global_webhooks"}),
    ],
)  # fmt: skip
def test_each_role_is_allowed_and_refused_where_it_should_be(
    request, catalog, persona, allowed, forget_redis_sessions
):
    client = request.getfixturevalue(persona)
    target, endpoint, session = catalog
    calls = {
        "read": [
            ("get", "/api/sessions/", None),
            ("get", f"/api/sessions/{session.pk}/stats/", None),
            ("get", f"/api/sessions/{session.pk}/timeseries/", None),
            ("get", f"/api/sessions/{session.pk}/history/", None),
            ("get", "/api/targets/", None),
            ("get", f"/api/endpoints/{endpoint.pk}/", None),
            ("get", "/api/workers/", None),
        ],
        "create_session": [("post", "/api/sessions/", {**NEW_SESSION, "target": target.pk})],
        "edit_session": [("patch", f"/api/sessions/{session.pk}/", {"concurrent_users": 3})],
        "stop_session": [("post", f"/api/sessions/{session.pk}/stop/", None)],
        # Before the session's deletion: a session's webhook needs its session.
        "session_webhooks": [
            ("get", "/api/webhooks/", None),
            (
                "post",
                "/api/webhooks/",
                {
                    "name": "w",
                    "url": "https://hooks.example.com/",
                    "events": ["completed"],
                    "session": session.pk,
                },
            ),
        ],
        "global_webhooks": [
            (
                "post",
                "/api/webhooks/",
                {"name": "g", "url": "https://hooks.example.com/", "events": ["completed"]},
            ),
        ],
        "delete_session": [("delete", f"/api/sessions/{session.pk}/", None)],
        "catalog": [
            ("post", "/api/targets/", {"name": "t2", "base_url": "http://localhost:9"}),
            ("patch", f"/api/endpoints/{endpoint.pk}/", {"weight": 2}),
        ],
        "emergency_stop": [("post", "/api/emergency-stop/", None)],
        "audit": [("get", "/api/audit/", None)],
    }
    for capability, requests in calls.items():
        for method, path, body in requests:
            response = getattr(client, method)(path, body, format="json")
            if capability in allowed:
                assert response.status_code < 400, (persona, method, path, response.content)
            else:
                assert response.status_code == 403, (persona, method, path, response.status_code)


def test_a_viewer_cannot_start_a_session(viewer_api, catalog):
    _, _, session = catalog
    assert viewer_api.post(f"/api/sessions/{session.pk}/start/").status_code == 403
    assert LoadTestSession.objects.get(pk=session.pk).status == "pending"
