"""Starting while Redis is unreachable: a clear 503, and the session stays startable."""

import pytest

from apps.sessions.models import Endpoint, LoadTestSession, Target
from loadtest_project.embedded_redis import free_port

pytestmark = pytest.mark.django_db


def test_start_without_redis_answers_503_and_keeps_the_session_pending(api, settings):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    response = api.post(f"/api/sessions/{session.pk}/start/")

    assert response.status_code == 503
    assert "REDIS_URL" in response.json()["detail"]
    session.refresh_from_db()
    assert session.status == "pending"
    assert session.start_time is None
