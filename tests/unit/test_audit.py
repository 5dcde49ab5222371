"""The audit log: every state-changing API and admin call, who, when, what, from where,
including refused ones; never request bodies."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.sessions.models import AuditEntry, LoadTestSession, Target

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(db):
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


def test_state_changing_api_calls_are_recorded_with_who_and_where(operator, target):
    token = Token.objects.create(user=operator)
    client = APIClient(REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="ci-pipeline/1.0")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    created = client.post("/api/sessions/", {"session_name": "s", "target": target.pk})
    client.get("/api/sessions/")  # reads are not audited

    (entry,) = AuditEntry.objects.all()
    assert (entry.username, entry.user, entry.method, entry.path, entry.status_code) == (
        "olivia", operator, "POST", "/api/sessions/", created.status_code,
    )  # fmt: skip
    assert (entry.remote_addr, entry.user_agent) == ("10.1.2.3", "ci-pipeline/1.0")


def test_refused_and_anonymous_attempts_are_recorded_too(viewer_api, target):
    session = LoadTestSession.objects.create(session_name="s", target=target)
    viewer_api.post(f"/api/sessions/{session.pk}/stop/")
    APIClient().post("/api/emergency-stop/")
    entries = list(AuditEntry.objects.order_by("pk").values_list("username", "path", "status_code"))
    assert entries == [
        ("vera", f"/api/sessions/{session.pk}/stop/", 403),
        ("", "/api/emergency-stop/", 401),
    ]


def test_admin_actions_are_recorded_without_form_contents(client, django_user_model, target):
    admin = django_user_model.objects.create_superuser("ada", "ada@example.com", "pw-ada-42")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    client.post("/admin/login/", {"username": "ada", "password": "pw-ada-42"})
    client.post("/admin/loadtests/loadtestsession/",
                {"action": "stop_sessions", "_selected_action": [session.pk]})  # fmt: skip

    login, action = AuditEntry.objects.order_by("pk")
    assert (login.path, login.username) == ("/admin/login/", "ada")
    assert "pw-ada-42" not in str(AuditEntry.objects.values())
    assert (action.user, action.action) == (admin, f"stop_sessions {session.pk}")


def test_only_admins_read_the_audit_log(admin_api, api, target):
    api.post("/api/sessions/", {"session_name": "s", "target": target.pk})
    assert api.get("/api/audit/").status_code == 403
    (entry,) = admin_api.get("/api/audit/").json()["results"]
    assert entry["path"] == "/api/sessions/"
