"""Secrets are masked by value, whatever they are called, wherever a target echoes them.

Error samples keep the start of what a target answered, and an error page may echo the
request: masking by header name showed ``X-Custom-Auth: ...`` in clear. Every configured
header value and every body or query secret is now masked by value in the shard (before a
sample leaves the worker), again when the monitor stores it, in exports and in the
configuration history, and never reaches a log.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from apps.sessions.models import Endpoint, ErrorSample, LoadTestSession, Target
from apps.sessions.results.sync import store_events
from apps.workers.control import SessionKeys
from apps.workers.plan import EndpointPlan, Plan
from apps.workers.secrets import (
    REDACTED,
    endpoint_secrets,
    is_secret_name,
    mask_headers_by_name,
    mask_secrets,
)
from apps.workers.vocabulary import ERROR_SAMPLE

from ..support.engine import events, shard_in_thread
from ..support.sessions import wait_for_status
from ..support.waiting import wait_until

# Every secret starts with MARK, so "MARK not in text" proves none leaked, not even the
# start of one cut short at the end of a sample.
MARK = "sEcR"
HEADERS = {
    "X-Custom-Auth": f"{MARK}1-custom-auth-value",
    "Authorization": f"Bearer {MARK}2-bearer-token",
    "X-Trace-Id": f"{MARK}3-trace",
}
BODY = json.dumps({"user": "ada", "password": f"{MARK}4-password", "n": 1})
QUERY = f"api_key={MARK}5-query-key&page=2"


# --- what counts as a secret ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Authorization", "X-Custom-Auth", "Cookie", "X-API-Key", "api_key", "access_token",
     "client_secret", "password", "X-CSRFToken", "sessionid", "x-amz-signature"],
)  # fmt: skip
def test_secret_looking_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Accept", "User-Agent", "X-Team", "page", "session_name"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_every_header_value_and_body_and_query_secret_is_found():
    basic = "Basic " + base64.b64encode(b"ada:b4sic-pw").decode()
    secrets = endpoint_secrets(
        {**HEADERS, "Cookie": "sessionid=c00kie-value; theme=dark", "Proxy": basic, "X-S": "abc"},
        BODY,
        f"http://127.0.0.1:5001/x?{QUERY}",
    )
    assert {
        *HEADERS.values(),
        f"{MARK}2-bearer-token",  # the credential alone, as a target may echo it
        "c00kie-value",
        "b4sic-pw",
        f"{MARK}4-password",
        f"{MARK}5-query-key",
    } <= secrets
    assert "abc" not in secrets  # shorter than 4 characters: no secret, and it would mask text
    assert "ada" not in secrets  # "user" is no secret-looking key


def test_secrets_nested_under_a_secret_key_and_in_form_bodies():
    nested = json.dumps({"credentials": {"user": "ada-user", "pin": 12345678}, "items": [1]})
    assert {"ada-user", "12345678"} <= endpoint_secrets({}, nested)
    assert {"f0rm-pw", "p@ss word"} <= endpoint_secrets({}, "user=ada&password=f0rm-pw") | (
        endpoint_secrets({}, "token=p%40ss+word")
    )
    assert endpoint_secrets({}, "[" * 100_000) == set()  # too deep to be JSON: no crash


def test_masking_covers_the_forms_a_target_echoes():
    secret = 'p&ss/"w<rd'
    echoes = ["p%26ss%2F%22w%3Crd", json.dumps(secret), "p&amp;ss/&quot;w&lt;rd"]
    text = f"raw {secret} url {echoes[0]} json {echoes[1]} html {echoes[2]}"
    masked = mask_secrets(text, {secret})
    assert "ss" not in masked.replace("[redacted]", "")
    assert masked.count(REDACTED) == 4


def test_a_text_cut_inside_a_secret_has_that_start_masked_only_when_cut_short():
    secret = "0123456789abcdef"
    assert mask_secrets("token is 01234567", {secret}, cut_short=True) == "token is [redacted]"
    assert mask_secrets("token is 012", {secret}, cut_short=True) == "token is 012"  # 3 chars
    assert mask_secrets("token is 01234567", {secret}) == "token is 01234567"


def test_headers_shown_in_the_api_are_masked_by_secret_looking_name():
    assert mask_headers_by_name(HEADERS) == {
        "X-Custom-Auth": REDACTED,
        "Authorization": REDACTED,
        "X-Trace-Id": HEADERS["X-Trace-Id"],
    }


# --- in the engine: before a sample leaves the worker ----------------------------------------


def echo_plan(server) -> Plan:
    endpoint = EndpointPlan(name="echo", method="POST", url=f"{server.base_url}/echo?{QUERY}",
                            timeout_s=5, headers=HEADERS, body=BODY, weight=1.0)  # fmt: skip
    return Plan(endpoints=(endpoint,), request_interval_min=0.01, request_interval_max=0.02)


@pytest.mark.integration
@pytest.mark.django_db
def test_the_shard_masks_echoed_secrets_before_they_leave_the_worker(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.echoes.add("/echo")
    counting_server.statuses["/echo"] = 500
    plan = echo_plan(counting_server)
    with shard_in_thread(redis_client, redis_url, plan, users=1, breaker_failures=0) as (
        session,
        _,
    ):
        wait_until(lambda: [e for e in events(redis_client, session) if e["kind"] == ERROR_SAMPLE],
                   timeout_s=15)  # fmt: skip
        samples = [e for e in events(redis_client, session) if e["kind"] == ERROR_SAMPLE]
    assert counting_server.count("/echo") > 0
    for sample in samples:  # read from Redis: what left the worker
        assert "X-Custom-Auth: [redacted]" in sample["message"]
        assert MARK not in sample["message"], sample["message"]


def test_the_monitor_masks_again_when_it_stores(redis_client, db):
    """A sample that reached Redis unmasked (an older worker, say) is masked when stored."""
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:5001")
    session = LoadTestSession.objects.create(
        session_name="s", target=target, plan=echo_plan(target).to_json()
    )
    leaked = {"at": time.time(), "kind": ERROR_SAMPLE, "endpoint": "echo",
              "failure_class": "http_5xx", "status": 500,
              "message": f"HTTP 500: X-Custom-Auth: {HEADERS['X-Custom-Auth']} Authoriz"
                         f"ation: Bearer {MARK}2-bea"}  # fmt: skip
    redis_client.lpush(SessionKeys(session.pk).events, json.dumps(leaked))
    try:
        store_events(session, redis_client)
    finally:
        redis_client.delete(SessionKeys(session.pk).events)
    (stored,) = ErrorSample.objects.filter(session=session)
    assert MARK not in stored.message
    assert stored.message.startswith("HTTP 500: X-Custom-Auth: [redacted]")


def test_exports_mask_secrets_in_rows_stored_before(admin_api, db):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:5001")
    session = LoadTestSession.objects.create(
        session_name="s", target=target, plan=echo_plan(target).to_json(), status="completed"
    )
    ErrorSample.objects.create(session=session, at="2025-01-01T00:00:00Z", endpoint="echo",
                               failure_class="http_5xx", status=500,
                               message=f"echo {HEADERS['X-Trace-Id']}")  # fmt: skip
    response = admin_api.get(f"/api/sessions/{session.pk}/export/?format=json")
    assert response.status_code == 200
    assert MARK not in response.content.decode()
    assert response.json()["errors"][0]["message"] == "echo [redacted]"


def test_the_history_never_stores_a_header_value_or_body_secret(admin_api, db):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:5001")
    endpoint = Endpoint.objects.create(target=target, name="e", url="/e")
    url = f"/api/endpoints/{endpoint.pk}/"
    first = admin_api.patch(url, {"headers": HEADERS, "body": BODY, "url": f"/e?{QUERY}"},
                            format="json")  # fmt: skip
    assert first.status_code == 200, first.json()
    rotated = {**HEADERS, "X-Custom-Auth": f"{MARK}9-rotated"}
    assert admin_api.patch(url, {"headers": rotated}, format="json").status_code == 200

    history = admin_api.get(f"{url}history/").json()["results"]
    assert MARK not in json.dumps(history)
    header_changes = [change for change in history if change["field"] == "headers"]
    newest, older = header_changes[0], header_changes[1]
    # The rotated credential shows as a change, without showing either value.
    assert newest["old_value"]["X-Custom-Auth"] != newest["new_value"]["X-Custom-Auth"]
    assert newest["old_value"]["X-Trace-Id"] == newest["new_value"]["X-Trace-Id"]
    assert older["new_value"]["X-Trace-Id"].startswith("[redacted] #")
    body_change = next(change for change in history if change["field"] == "body")
    assert '"password": "[redacted]"' in body_change["new_value"]


# --- end to end: a real session, real workers ------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_against_an_echoing_target_stores_and_exports_no_secret(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.echoes.add("/echo")
    counting_server.statuses["/echo"] = 500
    target = Target.objects.create(name="echoing", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="echo", url=f"/echo?{QUERY}", method="POST",
                            headers=HEADERS, body=BODY)  # fmt: skip
    created = api.post("/api/sessions/", {"session_name": "echo", "target": target.pk,
                                          "concurrent_users": 2, "duration_minutes": "0.03",
                                          "request_interval_min": 0.05,
                                          "request_interval_max": 0.1,
                                          "max_errors_per_minute": 0}, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    session_id = created.json()["id"]
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    session = wait_for_status(session_id, timeout_s=30)

    assert session.total_failures == session.total_requests > 0
    samples = api.get(f"/api/sessions/{session_id}/errors/").json()["results"]
    assert samples and all("[redacted]" in sample["message"] for sample in samples)
    exported = api.get(f"/api/sessions/{session_id}/export/?format=json").content.decode()
    table = api.get(f"/api/sessions/{session_id}/export/?format=csv").content.decode()
    assert "api_key=[redacted]&page=2" in table
    for text in (json.dumps(samples), exported, table, workers.log("load-test-1")):
        where = text.find(MARK)
        assert where == -1, text[max(where - 300, 0) : where + 100]
