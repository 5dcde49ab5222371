"""The live statistics stream (Server-Sent Events) through a real uvicorn process.

Only a real ASGI server shows whether events leave one by one or are buffered until the
stream ends, so the test starts uvicorn on the test database and reads the stream with
``requests`` as a client would. Sessions are rows written here: no Celery is involved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token

from apps.sessions.models import Endpoint, LoadTestSession, Target

from ..support.web import WebServer, procfile_web
from ..support.workers import database_url_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

READ_TIMEOUT_S = 5.0


def events_url(server: WebServer, session_id: int) -> str:
    return server.url(f"/api/sessions/{session_id}/events/")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, redis_url, tmp_path_factory) -> Iterator[WebServer]:
    """uvicorn serving the project on the test database, stats every 0.2 s."""
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    data_dir = tmp_path_factory.mktemp("web-data")
    log_path = tmp_path_factory.mktemp("web-logs") / "uvicorn.log"
    with procfile_web(database_url, redis_url, data_dir, log_path, SSE_INTERVAL_S="0.2") as running:
        yield running
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture
def viewer():
    """A user holding exactly the permission the stream needs, and the token header."""
    user = get_user_model().objects.create_user("vera", password="stream-viewer-42")
    user.user_permissions.add(Permission.objects.get(codename="view_loadtestsession"))
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def running_session() -> LoadTestSession:
    target = Target.objects.create(name="streamed", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    return LoadTestSession.objects.create(
        session_name="streamed",
        target=target,
        status="running",
        start_time=timezone.now(),
        total_requests=100,
    )


def read_events(response: requests.Response) -> Iterator[dict[str, str]]:
    """The SSE messages of ``response`` as field -> value dicts, each when it arrives."""
    message: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line:
            field, _, value = line.partition(":")
            message[field] = value.removeprefix(" ")
        elif message:
            yield message
            message = {}


def open_stream(server: WebServer, session_id: int, headers: dict) -> requests.Response:
    response = requests.get(
        events_url(server, session_id), headers=headers, stream=True, timeout=(2, READ_TIMEOUT_S)
    )
    assert response.status_code == 200, response.text
    return response


def test_stream_sends_stats_as_they_change(server, viewer, running_session):
    started = time.monotonic()
    with open_stream(server, running_session.pk, viewer) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        events = read_events(response)
        assert next(events) == {"retry": "3000"}

        first_three = [next(events) for _ in range(3)]
        assert time.monotonic() - started < 3.0, "events were buffered, not streamed"
        assert [event["event"] for event in first_three] == ["stats"] * 3
        ids = [int(event["id"]) for event in first_three]
        assert ids == sorted(ids) and len(set(ids)) == 3
        snapshot = json.loads(first_three[0]["data"])
        assert snapshot["session"] == running_session.pk
        assert snapshot["status"] == "running"
        assert snapshot["total_requests"] == 100

        LoadTestSession.objects.filter(pk=running_session.pk).update(total_requests=250)
        changed_by = time.monotonic() + 3.0
        for event in events:
            assert event["event"] == "stats"
            if json.loads(event["data"])["total_requests"] == 250:
                break
            assert time.monotonic() < changed_by, "the new total never reached the stream"


def test_stream_ends_when_the_session_does(server, viewer, running_session):
    with open_stream(server, running_session.pk, viewer) as response:
        events = read_events(response)
        assert next(events) == {"retry": "3000"}
        assert next(events)["event"] == "stats"

        LoadTestSession.objects.filter(pk=running_session.pk).update(
            status="completed", end_time=timezone.now(), total_requests=321
        )
        completed = time.monotonic()
        rest = []
        for event in events:  # ends only when the server closes the stream
            rest.append(event)
            assert time.monotonic() - completed < 3.0, "the stream did not end"
    assert rest[-1]["event"] == "end"
    assert {event["event"] for event in rest[:-1]} <= {"stats"}
    final = json.loads(rest[-1]["data"])
    assert (final["status"], final["total_requests"]) == ("completed", 321)


def test_stream_refuses_like_the_api(server, viewer, running_session):
    url = events_url(server, running_session.pk)

    anonymous = requests.get(url, timeout=READ_TIMEOUT_S)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}

    wrong_token = requests.get(url, headers={"Authorization": "Token nope"}, timeout=READ_TIMEOUT_S)
    assert wrong_token.status_code == 401

    plain = get_user_model().objects.create_user("paul", password="no-rights-at-all-42")
    plain_header = {"Authorization": f"Token {Token.objects.create(user=plain).key}"}
    forbidden = requests.get(url, headers=plain_header, timeout=READ_TIMEOUT_S)
    assert forbidden.status_code == 403
    assert "detail" in forbidden.json()

    unknown = requests.get(events_url(server, 999_999), headers=viewer, timeout=READ_TIMEOUT_S)
    assert unknown.status_code == 404
    assert "detail" in unknown.json()


LIVE = {"live": {"rps": 12.5, "users": 3}, "point": {"t": 1, "rps": 12.5}}


def test_published_snapshots_reach_every_stream_with_their_ids(
    server, viewer, running_session, redis_client
):
    """One snapshot per tick, built once by the monitor, fanned out to 50 open streams."""
    from concurrent.futures import ThreadPoolExecutor

    from apps.sessions.lifecycle.monitor import publish_snapshot

    publish_snapshot(running_session.pk, redis_client, LIVE, {})
    streams = [open_stream(server, running_session.pk, viewer) for _ in range(50)]
    readers = [read_events(response) for response in streams]
    try:
        for events in readers:
            assert next(events) == {"retry": "3000"}
            first = next(events)  # the stored snapshot, at once
            assert json.loads(first["data"])["live"]["rps"] == 12.5
        first_id = int(first["id"])
        LoadTestSession.objects.filter(pk=running_session.pk).update(total_requests=777)
        publish_snapshot(running_session.pk, redis_client, LIVE, {})

        def next_event(events):
            return next(events)

        with ThreadPoolExecutor(max_workers=50) as pool:
            received = list(pool.map(next_event, readers))
        for event in received:
            assert event["event"] == "stats" and int(event["id"]) == first_id + 1
            assert json.loads(event["data"])["total_requests"] == 777
    finally:
        for response in streams:
            response.close()


def test_a_reconnect_with_last_event_id_gets_the_latest_snapshot_at_once(
    server, viewer, running_session, redis_client
):
    from apps.sessions.lifecycle.monitor import publish_snapshot

    for _ in range(3):
        publish_snapshot(running_session.pk, redis_client, LIVE, {})
    started = time.monotonic()
    with open_stream(server, running_session.pk, {**viewer, "Last-Event-ID": "1"}) as response:
        events = read_events(response)
        assert next(events) == {"retry": "3000"}
        event = next(events)
        assert time.monotonic() - started < 2.0
    assert event["event"] == "stats" and int(event["id"]) == 3
    data = json.loads(event["data"])
    for key in ("live", "point", "remaining_s", "load_started_at", "status_detail", "shards",
                "errors", "endpoints", "not_sent"):  # fmt: skip
        assert key in data


def test_a_published_end_ends_every_stream(server, viewer, running_session, redis_client):
    from apps.sessions.lifecycle.monitor import publish_snapshot

    publish_snapshot(running_session.pk, redis_client, LIVE, {})
    with open_stream(server, running_session.pk, viewer) as response:
        events = read_events(response)
        next(events), next(events)
        LoadTestSession.objects.filter(pk=running_session.pk).update(
            status="completed", end_time=timezone.now()
        )
        publish_snapshot(running_session.pk, redis_client, LIVE, {})
        assert next(events)["event"] == "end"
