"""Redis dies under the web process: reads keep working from the database, actions that need
Redis answer 503 saying what is down, and nothing answers 500.

This process's Redis (its settings, the cache that counts API calls, the Celery broker) is a
private server that each test kills, so the session-wide test Redis, which the workers use,
is never touched.
"""

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.authtoken.models import Token

from apps.sessions.api import throttles
from apps.sessions.api.exceptions import exception_handler
from apps.sessions.models import Endpoint, LoadTestSession, Target
from loadtest_project import celery_app
from loadtest_project.embedded_redis import EmbeddedRedis

from ..support.broker import use_broker
from ..support.engine import plan_for
from .test_permissions import api_paths

pytestmark = pytest.mark.django_db

PLAN = plan_for([("a", "http://127.0.0.1:9/a")]).to_json()


@pytest.fixture
def own_redis(settings) -> Iterator[EmbeddedRedis]:
    """A private Redis for this process's settings, cache and Celery broker, for the test
    to kill."""
    server = EmbeddedRedis()
    url = server.start()
    previous_broker = celery_app.conf.broker_url
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    use_broker(url)
    try:
        yield server
    finally:
        use_broker(previous_broker)
        server.stop()


@pytest.fixture
def sessions(db):
    """A pending, a running and a completed session, as the database holds them."""
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    started = timezone.now() - timedelta(minutes=1)
    common = {"target": target, "duration_minutes": 0}
    return {
        "pending": LoadTestSession.objects.create(session_name="pending", **common),
        "running": LoadTestSession.objects.create(
            session_name="running", status="running", start_time=started,
            load_started_at=started, plan=PLAN, **common,
        ),
        "completed": LoadTestSession.objects.create(
            session_name="done", status="completed", start_time=started,
            end_time=started + timedelta(seconds=30), end_reason="completed", plan=PLAN,
            total_requests=12, **common,
        ),
    }  # fmt: skip


def kill(server: EmbeddedRedis, client) -> None:
    """Kill Redis once the client has been seen to work with it (so its calls were counted
    in that Redis's cache)."""
    assert client.get("/api/sessions/").status_code == 200
    server.kill()


def test_reading_sessions_keeps_working_from_the_database(own_redis, sessions, viewer_api):
    kill(own_redis, viewer_api)
    done = sessions["completed"].pk
    for path in (
        "/api/sessions/",
        f"/api/sessions/{done}/",
        f"/api/sessions/{done}/stats/",
        f"/api/sessions/{done}/timeseries/",
        f"/api/sessions/{done}/errors/",
        f"/api/sessions/{done}/export/?format=json",
        f"/api/sessions/{done}/history/",
        f"/api/sessions/{sessions['running'].pk}/",
        "/api/targets/",
        "/api/endpoints/",
    ):
        response = viewer_api.get(path)
        assert response.status_code == 200, (path, response.status_code)
    assert viewer_api.get(f"/api/sessions/{done}/").json()["total_requests"] == 12


def test_creating_and_deleting_a_pending_session_need_no_redis(own_redis, sessions, api):
    kill(own_redis, api)
    body = {"session_name": "new", "target": sessions["pending"].target_id}
    created = api.post("/api/sessions/", body, format="json")
    assert created.status_code == 201, created.json()
    assert api.delete(f"/api/sessions/{created.json()['id']}/").status_code == 204


def test_no_api_route_answers_500(own_redis, sessions, admin_api):
    kill(own_redis, admin_api)
    # Format-suffixed routes (.json) are left to the bad-input tests: /history.json/ answers
    # 500 whether Redis is up or not.
    for path in sorted(path for path in api_paths() if ".json" not in path):
        status = admin_api.get(path).status_code
        assert status < 500 or status == 503, (path, status)


def _sse(client_token: str, session_id: int):
    from django.test import Client

    return Client().get(
        f"/api/sessions/{session_id}/events/", HTTP_AUTHORIZATION=f"Token {client_token}"
    )


@pytest.mark.parametrize(
    "call",
    ["start", "stop", "resize", "emergency stop", "workers", "event stream"],
)
def test_actions_that_need_redis_answer_503_saying_what_is_down(
    own_redis, sessions, api, admin_api, operator, call
):
    kill(own_redis, admin_api)
    pending, running = sessions["pending"].pk, sessions["running"].pk
    began = time.monotonic()
    if call == "start":
        response = api.post(f"/api/sessions/{pending}/start/")
    elif call == "stop":
        response = api.post(f"/api/sessions/{running}/stop/")
    elif call == "resize":
        response = api.patch(f"/api/sessions/{running}/", {"concurrent_users": 3}, format="json")
    elif call == "emergency stop":
        response = admin_api.post("/api/emergency-stop/")
    elif call == "workers":
        response = api.get("/api/workers/")
    else:
        response = _sse(Token.objects.create(user=operator).key, running)
    took_s = time.monotonic() - began

    assert response.status_code == 503, response.content
    detail = response.json()["detail"]
    assert "Redis" in detail and "REDIS_URL" in detail, detail
    assert took_s < 3, f"{call} took {took_s:.1f} s to fail"
    # Nothing changed: the pending session can be started later, the running one still runs.
    statuses = dict(LoadTestSession.objects.values_list("pk", "status"))
    assert statuses[pending] == "pending" and statuses[running] == "running"
    assert LoadTestSession.objects.get(pk=pending).start_time is None
    assert LoadTestSession.objects.get(pk=running).concurrent_users == 10


def test_rate_limits_fail_open_with_one_warning_a_minute_and_resume(
    own_redis, sessions, viewer_api, monkeypatch, caplog
):
    monkeypatch.setattr(throttles, "_cache_warning_logged_at", float("-inf"))
    kill(own_redis, viewer_api)
    with caplog.at_level(logging.WARNING, logger=throttles.__name__):
        statuses = [viewer_api.get("/api/sessions/").status_code for _ in range(5)]
    assert statuses == [200] * 5
    warnings = [r for r in caplog.records if r.name == throttles.__name__]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Redis" in warnings[0].getMessage()

    own_redis.start()  # back (empty): calls are counted again
    assert viewer_api.get("/api/sessions/").status_code == 200
    import redis

    counted = redis.Redis.from_url(own_redis.url).keys("*throttle_user*")
    assert counted, "the throttle did not count in Redis once it was back"


def test_admin_pages_and_actions_work_while_redis_is_down(own_redis, sessions, client,
                                                          django_user_model):  # fmt: skip
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw-root-42")
    client.force_login(admin)
    own_redis.kill()
    changelist = reverse("admin:loadtests_loadtestsession_changelist")
    assert client.get(changelist).status_code == 200
    pending = sessions["pending"]
    page = reverse("admin:loadtests_loadtestsession_change", args=[pending.pk])
    assert client.get(page).status_code == 200

    began = time.monotonic()
    response = client.post(
        changelist, {"action": "start_sessions", "_selected_action": [pending.pk]}, follow=True
    )
    assert time.monotonic() - began < 3
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert any("Redis" in message for message in shown), shown
    assert LoadTestSession.objects.get(pk=pending.pk).status == "pending"


@pytest.mark.parametrize(
    "error",
    [
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        RedisTimeoutError("Timeout reading from socket"),
        OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    ],
    ids=["redis connection", "redis timeout", "broker"],
)
def test_connection_errors_anywhere_in_a_view_are_a_503(error):
    response = exception_handler(error, {})
    assert response.status_code == 503
    assert "REDIS_URL" in response.data["detail"]
