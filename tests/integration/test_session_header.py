"""The APM beside the load, the load's side: every request names its session in a header
(SESSION_HEADER_NAME, or none when the session turns it off) and, when asked, carries a fresh
W3C traceparent whose trace id the session's error samples and request log keep.

Real sessions on real workers against the counting server, which keeps the header's value
of every request it counts; the request bytes themselves are checked without a network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httptools
import pytest
from django.test import override_settings

from apps.sessions.cli.config_file import export_config
from apps.sessions.models import Endpoint, ErrorSample, LoadTestSession, RequestLogEntry, Target
from apps.workers.http import TRACEPARENT_LENGTH, prepare

from ..support.forms import browser_for, form_body
from ..support.sessions import BRISK, create_session, make_target, start_load, wait_for_status
from ..support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01\Z")
ENOUGH_REQUESTS = 60


def _parsed_headers(raw: bytes) -> dict[str, str]:
    """The headers of request bytes, as a server's parser reads them."""
    headers: dict[str, str] = {}

    class Reader:
        def on_header(self, name: bytes, value: bytes) -> None:
            headers[name.decode().lower()] = value.decode("latin-1")

    httptools.HttpRequestParser(Reader()).feed_data(raw)
    return headers


# --- the request bytes (no network) ----------------------------------------------------------


def test_the_session_header_is_in_the_prepared_bytes_and_an_endpoints_own_wins():
    plain = prepare("GET", "http://127.0.0.1:5001/x", default_headers={"X-Load-Test-Session": "7"})
    assert _parsed_headers(plain.raw)["x-load-test-session"] == "7"
    own = prepare(
        "GET",
        "http://127.0.0.1:5001/x",
        {"x-load-test-session": "nightly"},
        default_headers={"X-Load-Test-Session": "7"},
    )
    assert _parsed_headers(own.raw)["x-load-test-session"] == "nightly"
    assert own.raw.lower().count(b"x-load-test-session") == 1


def test_a_traceparent_is_spliced_into_the_same_bytes_fresh_each_time():
    request = prepare(
        "POST",
        "http://127.0.0.1:5001/orders?id=1",
        {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "X-Api": "v"},
        '{"a": 1}',
        default_headers={"X-Load-Test-Session": "7"},
        traceparent=True,
    )
    untraced = prepare(
        "POST", "http://127.0.0.1:5001/orders?id=1", {"X-Api": "v"}, '{"a": 1}',
        default_headers={"X-Load-Test-Session": "7"},
    )  # fmt: skip
    drawn = [(request.trace_id(raw), raw) for raw in (request.traced() for _ in range(2000))]
    trace_ids = {trace_id for trace_id, _ in drawn}
    assert len(trace_ids) == len(drawn)
    for trace_id, raw in drawn[:50]:
        headers = _parsed_headers(raw)
        match = TRACEPARENT.match(headers["traceparent"])
        assert match and match.group(1) == trace_id and int(trace_id, 16) != 0
        # The endpoint's fixed traceparent is replaced; the rest is the request as prepared.
        assert len(raw) == len(untraced.raw) + len("traceparent: \r\n") + TRACEPARENT_LENGTH
        assert raw.endswith(b'\r\n\r\n{"a": 1}')
        assert headers["x-load-test-session"] == "7" and headers["content-length"] == "8"
    assert request.raw.count(b"traceparent") == 0  # never sent untraced by mistake


@pytest.mark.parametrize("name", ["X Load", "X-Load:", "Content-Length", "traceparent", "Host"])
def test_a_session_header_name_that_is_not_a_token_stops_the_process(tmp_path, name):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "DEBUG": "True", "SESSION_HEADER_NAME": name}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SESSION_HEADER_NAME" in result.stderr and "not a header name" in result.stderr


# --- real sessions ---------------------------------------------------------------------------


def _run_until_enough(api, server, **config) -> int:
    session_id = start_load(api, server, concurrent_users=4, duration_minutes=0,
                            max_errors_per_minute=0, **BRISK, **config)  # fmt: skip
    try:
        wait_until(lambda: server.total >= ENOUGH_REQUESTS, timeout_s=30)
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    return session_id


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_request_names_its_session(workers, api, counting_server, forget_redis_sessions):
    counting_server.watch("X-Load-Test-Session", "traceparent")
    session_id = _run_until_enough(api, counting_server)
    total, values = counting_server.seen("X-Load-Test-Session")
    assert total >= ENOUGH_REQUESTS and len(values) == total
    assert set(values) == {str(session_id)}
    assert set(counting_server.seen("traceparent")[1]) == {None}  # off by default
    assert LoadTestSession.objects.get(pk=session_id).total_requests == total


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_can_turn_the_header_off(workers, api, counting_server, forget_redis_sessions):
    counting_server.watch("X-Load-Test-Session")
    _run_until_enough(api, counting_server, send_session_header=False)
    total, values = counting_server.seen("X-Load-Test-Session")
    assert total >= ENOUGH_REQUESTS and values == [None] * total


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@override_settings(SESSION_HEADER_NAME="X-Perf-Run")
def test_a_custom_header_name_and_a_traceparent_per_request(
    workers, api, viewer_api, counting_server, forget_redis_sessions
):
    counting_server.watch("X-Perf-Run", "X-Load-Test-Session", "traceparent")
    counting_server.statuses["/broken"] = 500
    endpoints = (("ok", "/ok", 1.0), ("broken", "/broken", 1.0))
    session_id = create_session(api, make_target(api, counting_server, endpoints),
                                concurrent_users=4, duration_minutes=0, max_errors_per_minute=0,
                                send_traceparent=True, enable_logging=True, **BRISK)  # fmt: skip
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    try:
        wait_until(lambda: counting_server.total >= ENOUGH_REQUESTS, timeout_s=30)
        wait_until(lambda: ErrorSample.objects.filter(session_id=session_id).exists(), 15)
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    total, names = counting_server.seen("X-Perf-Run")
    assert set(names) == {str(session_id)} and len(names) == total
    assert set(counting_server.seen("X-Load-Test-Session")[1]) == {None}
    _, traceparents = counting_server.seen("traceparent")
    assert len(traceparents) == total
    matches = [TRACEPARENT.match(value or "") for value in traceparents]
    assert all(matches), [v for v, m in zip(traceparents, matches, strict=True) if not m][:3]
    trace_ids = [match.group(1) for match in matches if match]
    assert len(set(trace_ids)) == total  # a fresh trace per request
    # A failing request (and a logged one) can be found in the APM by its trace id.
    samples = ErrorSample.objects.filter(session_id=session_id)
    assert samples and all(sample.trace_id in set(trace_ids) for sample in samples)
    logged = RequestLogEntry.objects.filter(session_id=session_id)
    assert logged and all(entry.trace_id in set(trace_ids) for entry in logged)
    errors = viewer_api.get(f"/api/sessions/{session_id}/errors/").json()
    rows = errors["results"] if isinstance(errors, dict) else errors
    assert rows and all(row["trace_id"] in set(trace_ids) for row in rows)


@pytest.mark.django_db
def test_the_apm_fields_are_config_cloned_and_exported(api):
    target = Target.objects.create(name="apm", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    body = {"session_name": "apm", "target": target.pk, "send_session_header": False,
            "send_traceparent": True}  # fmt: skip
    created = api.post("/api/sessions/", body, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["send_session_header"], created.json()["send_traceparent"]) == (
        False, True,
    )  # fmt: skip
    clone = api.post(f"/api/sessions/{created.json()['id']}/clone/")
    assert (clone.json()["send_session_header"], clone.json()["send_traceparent"]) == (False, True)
    exported = export_config(LoadTestSession.objects.get(pk=created.json()["id"]), as_yaml=True)
    assert "send_session_header: false" in exported and "send_traceparent: true" in exported
    refused = api.post("/api/sessions/", {**body, "send_traceparent": "maybe"}, format="json")
    assert refused.status_code == 400 and "send_traceparent" in refused.json()


@pytest.mark.django_db
@override_settings(SESSION_HEADER_NAME="X-Perf-Run")
def test_the_dashboard_form_sets_shows_and_clones_the_apm_fields(operator):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="fast", url="/fast")
    browser = browser_for(operator)
    page = browser.get(f"/sessions/new/?target={target.pk}").content.decode()
    assert 'name="send_session_header" id="id_send_session_header" checked' in page
    assert 'name="send_traceparent" id="id_send_traceparent">' in page  # off by default
    assert "<code>X-Perf-Run: &lt;id&gt;</code>" in page
    # A check box left unchecked is not posted: the header off, the traceparent on.
    body = form_body(target, send_traceparent="on")
    assert browser.post("/sessions/new/", body).status_code == 302
    session = LoadTestSession.objects.get()
    assert (session.send_session_header, session.send_traceparent) == (False, True)
    clone = browser.get(f"/sessions/new/?clone={session.pk}").content.decode()
    assert 'name="send_session_header" id="id_send_session_header">' in clone
    assert 'name="send_traceparent" id="id_send_traceparent" checked' in clone
