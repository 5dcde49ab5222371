"""New Relic beside the load: a real session, with New Relic configured, puts a marker on the
entity at its start and end (NerdGraph) and sends LoadTestSummary events (Event API) while it
runs; New Relic refusing or unreachable becomes the session's event and nothing else.

New Relic is a local stand-in (tests/support/servers.py) that checks each request's shape and keys.
The control worker and beat read New Relic's settings at start-up, so this module swaps the
shared ones for a pair configured for the stand-in, and back at its end.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from apps.sessions.choices import EventKind, SessionStatus
from apps.sessions.integrations import newrelic
from apps.sessions.models import LoadTestSession, SessionEvent, Target

from ..support.servers import NewRelicStandIn
from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until
from ..support.workers import Workers

API_KEY = "NRAK-TESTUSERKEY0123456789ABCDEF"
LICENSE_KEY = "eu01xxTESTLICENSEKEY0123456789abcdefNRAL"
ACCOUNT_ID = "1234567"
ENTITY_GUID = "MTIzNDU2N3xBUE18QVBQTElDQVRJT058OTg3NjU0"
FAILURE_EVENT_INTERVAL_S = 5


@contextmanager
def control_plane_with(workers: Workers, name: str, env: dict[str, str]) -> Iterator[None]:
    """The shared control worker and beat replaced by ones started with ``env``, restored
    (as the conftest starts them) afterwards."""
    shared = next(host for host in workers.hostnames if host.startswith("control-test@"))
    (beat,) = [process for process in workers.group.processes if process.name == "beat"]
    workers.stop(shared)
    workers.group.stop(beat, grace_s=10)
    workers.group.processes.remove(beat)
    hostname = f"{name}@{shared.split('@', 1)[1]}"
    own_beat = None
    try:
        workers.start("control", name, **env)
        own_beat = workers.group.start("beat", workers.procfile["beat"],
                                       env={**workers.env, **env},
                                       log_path=workers.log_dir / f"beat-{name}.log")  # fmt: skip
        yield
    finally:
        if own_beat is not None:
            workers.group.stop(own_beat, grace_s=10)
            workers.group.processes.remove(own_beat)
        if hostname in workers.hostnames:
            workers.stop(hostname)
        workers.start("control", "control-test")
        workers.group.start("beat", workers.procfile["beat"], env=workers.env,
                            log_path=workers.log_dir / "beat.log")  # fmt: skip


@pytest.fixture(scope="module")
def stand_in(workers) -> Iterator[NewRelicStandIn]:
    server = NewRelicStandIn(api_key=API_KEY, license_key=LICENSE_KEY, account_id=ACCOUNT_ID,
                             entity_guid=ENTITY_GUID).start()  # fmt: skip
    env = {
        "NEW_RELIC_API_KEY": API_KEY,
        "NEW_RELIC_LICENSE_KEY": LICENSE_KEY,
        "NEW_RELIC_ACCOUNT_ID": ACCOUNT_ID,
        "NEW_RELIC_ENTITY_GUID": ENTITY_GUID,
        "NEW_RELIC_GRAPHQL_URL": server.graphql_url,
        "NEW_RELIC_EVENTS_URL": server.events_url,
        "NEW_RELIC_EVENT_INTERVAL_S": "1",
        "NEW_RELIC_TIMEOUT_S": "2",
        "NEW_RELIC_FAILURE_EVENT_INTERVAL_S": str(FAILURE_EVENT_INTERVAL_S),
    }
    try:
        with control_plane_with(workers, "control-newrelic", env):
            yield server
    finally:
        server.stop()


def _markers(stand_in: NewRelicStandIn, session_id: int) -> list[dict]:
    return [m for m in stand_in.markers if m["groupId"] == f"loadtest-session-{session_id}"]


def _events(stand_in: NewRelicStandIn, session_id: int) -> list[dict]:
    return [event for event in stand_in.events if event["sessionId"] == session_id]


def _failures(session_id: int) -> list[str]:
    events = SessionEvent.objects.filter(session_id=session_id, kind=EventKind.NEWRELIC_FAILED)
    return list(events.order_by("at").values_list("message", flat=True))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_marks_its_start_and_end_and_sends_summaries(
    workers, stand_in, api, counting_server, forget_redis_sessions
):
    session_id = start_load(api, counting_server, concurrent_users=4, duration_minutes=0,
                            session_name="checkout soak", **BRISK)  # fmt: skip
    try:
        wait_until(lambda: len(_markers(stand_in, session_id)) == 1, timeout_s=20)
        wait_until(lambda: any(e["requests"] > 0 for e in _events(stand_in, session_id)), 20)
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    start, end = wait_until(lambda: (m := _markers(stand_in, session_id)) and len(m) == 2 and m,
                            timeout_s=20)  # fmt: skip
    session = LoadTestSession.objects.get(pk=session_id)
    assert start["entityGuid"] == end["entityGuid"] == ENTITY_GUID
    assert start["version"] == f"load test #{session_id} start"
    assert start["description"] == (
        f"Load test started: checkout soak (#{session_id}), 4 users → {counting_server.base_url}"
    )
    assert start["user"] == "olivia" and start["changelog"].endswith(f"/sessions/{session_id}/")
    assert end["version"] == f"load test #{session_id} end"
    assert end["description"].startswith(f"Load test ended: checkout soak (#{session_id}) [stopped")
    assert f": {session.total_requests} requests, " in end["description"]
    assert start["timestamp"] <= end["timestamp"]

    event = next(e for e in _events(stand_in, session_id) if e["requests"] > 0)
    assert event["eventType"] == "LoadTestSummary"
    assert (event["sessionName"], event["target"], event["users"]) == (
        "checkout soak", counting_server.base_url, 4,
    )  # fmt: skip
    assert event["rps"] > 0 and 0 <= event["errorRate"] <= 1 and event["intervalSeconds"] > 0
    # Consecutive events count what happened between them: together, the totals.
    events = _events(stand_in, session_id)
    assert sum(e["requests"] for e in events) == events[-1]["totalRequests"]
    assert event["p95Ms"] > 0
    assert event["requests"] <= event["totalRequests"] <= session.total_requests
    assert stand_in.refused == []
    assert _failures(session_id) == []
    # The keys travel only in the requests' headers: never in a log line (nor task arguments,
    # which the worker logs on failure).
    logs = workers.log_file()
    assert API_KEY not in logs and LICENSE_KEY not in logs


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_new_relic_failing_becomes_session_events_and_nothing_else(
    workers, stand_in, api, counting_server, forget_redis_sessions
):
    stand_in.fail_with = 500
    try:
        session_id = start_load(api, counting_server, concurrent_users=2, duration_minutes=0,
                                **BRISK)  # fmt: skip
        try:
            wait_until(lambda: len(_failures(session_id)) >= 2, timeout_s=20)
            stand_in.fail_with = 401
            # "HTTP 401", not "401": the stand-in's port may hold those digits.
            wait_until(lambda: any("HTTP 401" in m for m in _failures(session_id)),
                       timeout_s=FAILURE_EVENT_INTERVAL_S + 10)  # fmt: skip
            running = LoadTestSession.objects.get(pk=session_id)
            assert running.status == SessionStatus.RUNNING
        finally:
            api.post(f"/api/sessions/{session_id}/stop/")
            session = wait_for_status(session_id)
    finally:
        stand_in.fail_with = None
    assert session.status == SessionStatus.STOPPED and session.end_reason == "stopped_by_user"
    assert session.total_requests == counting_server.total > 0
    failures = _failures(session_id)
    assert any(m.startswith("New Relic: The start marker:") and "HTTP 500" in m for m in failures)
    summaries = [m for m in failures if m.startswith("New Relic: Summary events:")]
    assert any("HTTP 500" in m for m in summaries)
    assert any("HTTP 401 (check the key)" in m for m in summaries)
    # Failing every second, recorded once per NEW_RELIC_FAILURE_EVENT_INTERVAL_S at most.
    elapsed_s = (session.end_time - session.start_time).total_seconds()
    assert len(summaries) <= elapsed_s / FAILURE_EVENT_INTERVAL_S + 1
    assert all(API_KEY not in m and LICENSE_KEY not in m for m in failures)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _started_session() -> LoadTestSession:
    target = Target.objects.create(name="nr", base_url="http://127.0.0.1:5001")
    now = timezone.now()
    return LoadTestSession.objects.create(
        session_name="nr", target=target, start_time=now, load_started_at=now,
        status=SessionStatus.RUNNING,
    )  # fmt: skip


@pytest.mark.django_db
def test_new_relic_not_listening_is_a_session_event_not_an_exception():
    session = _started_session()
    nowhere = f"http://127.0.0.1:{_free_port()}"
    with override_settings(NEW_RELIC_API_KEY=API_KEY, NEW_RELIC_ENTITY_GUID=ENTITY_GUID,
                           NEW_RELIC_ACCOUNT_ID=ACCOUNT_ID, NEW_RELIC_LICENSE_KEY=LICENSE_KEY,
                           NEW_RELIC_GRAPHQL_URL=f"{nowhere}/graphql",
                           NEW_RELIC_EVENTS_URL=f"{nowhere}/v1/accounts/{ACCOUNT_ID}/events",
                           NEW_RELIC_FAILURE_EVENT_INTERVAL_S=0):  # fmt: skip
        newrelic.send_marker(session.pk, newrelic.END)
        assert newrelic.send_summaries() == 0
    assert _failures(session.pk) == [
        f"New Relic: The end marker: {nowhere}: could not connect",
        f"New Relic: Summary events: {nowhere}: could not connect",
    ]


@pytest.mark.django_db
def test_new_relic_is_off_without_a_key_and_a_guid():
    session = _started_session()
    stand_in = NewRelicStandIn(api_key=API_KEY, license_key=LICENSE_KEY, account_id=ACCOUNT_ID,
                               entity_guid=ENTITY_GUID).start()  # fmt: skip
    try:
        urls = {"NEW_RELIC_GRAPHQL_URL": stand_in.graphql_url,
                "NEW_RELIC_EVENTS_URL": stand_in.events_url}  # fmt: skip
        with override_settings(NEW_RELIC_API_KEY=API_KEY, NEW_RELIC_ENTITY_GUID="",
                               NEW_RELIC_ACCOUNT_ID=ACCOUNT_ID,
                               NEW_RELIC_LICENSE_KEY=LICENSE_KEY, **urls):  # fmt: skip
            assert not newrelic.markers_enabled() and not newrelic.events_enabled()
            newrelic.send_marker(session.pk, newrelic.START)
            assert newrelic.send_summaries() == 0
        with override_settings(NEW_RELIC_API_KEY=API_KEY, NEW_RELIC_ENTITY_GUID=ENTITY_GUID,
                               NEW_RELIC_ACCOUNT_ID="", **urls):  # fmt: skip
            assert newrelic.markers_enabled() and not newrelic.events_enabled()
            assert newrelic.send_summaries() == 0
        assert stand_in.markers == stand_in.events == stand_in.refused == []
    finally:
        stand_in.stop()


@pytest.mark.django_db
def test_check_newrelic_sends_a_test_marker_and_event(capsys):
    stand_in = NewRelicStandIn(api_key=API_KEY, license_key=LICENSE_KEY, account_id=ACCOUNT_ID,
                               entity_guid=ENTITY_GUID).start()  # fmt: skip
    configured = {"NEW_RELIC_API_KEY": API_KEY, "NEW_RELIC_ENTITY_GUID": ENTITY_GUID,
                  "NEW_RELIC_ACCOUNT_ID": ACCOUNT_ID, "NEW_RELIC_LICENSE_KEY": LICENSE_KEY,
                  "NEW_RELIC_GRAPHQL_URL": stand_in.graphql_url,
                  "NEW_RELIC_EVENTS_URL": stand_in.events_url}  # fmt: skip
    try:
        with override_settings(**configured):
            call_command("check_newrelic")
        assert [m["version"] for m in stand_in.markers] == ["load tester connection check"]
        assert [e["eventType"] for e in stand_in.events] == ["LoadTestCheck"]
        assert stand_in.refused == []
        output = capsys.readouterr().out
        assert "marker: sent" in output and "events: sent" in output
        assert API_KEY not in output
        wrong_key = {**configured, "NEW_RELIC_API_KEY": "NRAK-WRONG"}
        with (
            override_settings(**wrong_key),
            pytest.raises(CommandError, match=re.escape("HTTP 401 (check the key)")),
        ):
            call_command("check_newrelic")
        with override_settings(NEW_RELIC_API_KEY=""), pytest.raises(CommandError, match="off"):
            call_command("check_newrelic")
    finally:
        stand_in.stop()
