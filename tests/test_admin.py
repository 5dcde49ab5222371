"""The Django admin: every model is listed, and sessions start and stop from it."""

import pytest
from django.apps import apps
from django.urls import reverse

from apps.sessions.models import Endpoint, LoadTestSession, Target

from .conftest import wait_until
from .sessions import wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ada", "ada@example.com", "pw-ada-42")
    client.force_login(admin)
    return client


@pytest.mark.parametrize("model", list(apps.get_app_config("loadtests").get_models()))
def test_every_model_has_a_changelist(admin_client, model):
    meta = model._meta
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200


def test_invalid_session_in_admin_shows_errors_and_stores_nothing(admin_client):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    response = admin_client.post(
        reverse("admin:loadtests_loadtestsession_add"),
        {
            "session_name": "bad",
            "target": target.pk,
            "concurrent_users": 10,
            "duration_minutes": "1",
            "request_interval_min": 5,
            "request_interval_max": 1,
            "endpoint_weights": '{"nope": 1}',
            "max_errors_per_minute": 100,
        },
    )
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert "request_interval_min" in errors and "endpoint_weights" in errors
    assert LoadTestSession.objects.count() == 0


@pytest.mark.integration
def test_admin_actions_start_and_stop_a_session(
    admin_client, workers, counting_server, forget_redis_sessions
):
    target = Target.objects.create(name="counting", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    session = LoadTestSession.objects.create(
        session_name="from admin",
        target=target,
        concurrent_users=3,
        request_interval_min=0.05,
        request_interval_max=0.1,
        duration_minutes=0,
    )
    changelist = reverse("admin:loadtests_loadtestsession_changelist")

    admin_client.post(changelist, {"action": "start_sessions", "_selected_action": [session.pk]})
    wait_for_status(session.pk, {"running"}, timeout_s=15)
    wait_until(lambda: counting_server.total > 10, timeout_s=10)
    admin_client.post(changelist, {"action": "stop_sessions", "_selected_action": [session.pk]})
    session = wait_for_status(session.pk, {"stopped", "failed"}, timeout_s=20)

    assert session.status == "stopped"
    assert session.started_by.username == session.stopped_by.username == "ada"
    assert session.total_requests == counting_server.total
    page = admin_client.get(reverse("admin:loadtests_loadtestsession_change", args=[session.pk]))
    assert page.status_code == 200
