"""Issue 22, item 5: a shard runs only the plan the control plane wrote. Someone who can write
to Redis rewrites a running session's stored plan to send its load to a host the allow-list
refuses, then kills the worker so that the monitor re-dispatches the shard, which reads the
plan again: the new shard sends nothing there, and the session's events say why."""

import json

import pytest
from django.conf import settings

from apps.sessions.models import LoadTestSession
from apps.workers.control import SessionKeys
from apps.workers.plan import Plan, plan_signing_key, signed_plan_text

from ..support.servers import CountingServer
from ..support.sessions import BRISK, start_load
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def off_list_server():
    """A server of this machine at an address the tests' allow-list (localhost and
    127.0.0.1, any port) does not name: load must never reach it."""
    server = CountingServer(host="127.0.0.2").start()
    yield server
    server.stop()


def heartbeat(redis_client, session_id):
    raw = redis_client.get(SessionKeys(session_id).heartbeat(0))
    return json.loads(raw) if raw else None


def stored_plan_json(raw: bytes) -> dict:
    """The plan's JSON, whether stored signed (signature, dot, JSON) or, as before, bare."""
    return json.loads(raw.partition(b".")[2] if raw[:1] != b"{" else raw)


def engine_errors(session_id: int) -> list[str]:
    session = LoadTestSession.objects.get(pk=session_id)
    return [event.message for event in session.events.filter(kind="engine_error")]


def run_then_tamper_and_kill(api, workers, redis_client, target, rewrite) -> int:
    session_id = start_load(api, target, concurrent_users=2, duration_minutes="0", **BRISK)
    first = wait_until(lambda: heartbeat(redis_client, session_id), timeout_s=15)
    wait_until(lambda: target.total > 5, timeout_s=10)
    keys = SessionKeys(session_id)
    redis_client.set(keys.plan, rewrite(redis_client.get(keys.plan)), keepttl=True)
    workers.kill(first["hostname"])  # the monitor re-dispatches: the shard reads the plan anew
    return session_id


def pointed_at(raw: bytes, server: CountingServer) -> dict:
    plan = stored_plan_json(raw)
    for endpoint in plan["endpoints"]:
        endpoint["url"] = server.base_url + "/ping"
    return plan


def test_a_plan_rewritten_in_redis_is_refused_by_its_signature(
    api, two_load_workers, counting_server, off_list_server, forget_redis_sessions, redis_client
):
    # Without SECRET_KEY the attacker writes the plan as JSON, or keeps the old signature.
    session_id = run_then_tamper_and_kill(
        api, two_load_workers, redis_client, counting_server,
        lambda raw: json.dumps(pointed_at(raw, off_list_server)),
    )  # fmt: skip
    messages = wait_until(lambda: engine_errors(session_id), timeout_s=30)
    assert "signature does not match" in messages[0], messages
    assert off_list_server.total == 0
    api.post(f"/api/sessions/{session_id}/stop/")


def test_a_signed_plan_off_the_allow_list_is_refused_by_the_worker(
    api, two_load_workers, counting_server, off_list_server, forget_redis_sessions, redis_client
):
    # Even a plan signed with the right key (a leaked key, a bug in the control plane) is
    # checked against the worker's own allow-list before anything is sent.
    key = plan_signing_key(settings.SECRET_KEY)
    session_id = run_then_tamper_and_kill(
        api, two_load_workers, redis_client, counting_server,
        lambda raw: signed_plan_text(Plan.from_json(pointed_at(raw, off_list_server)), key),
    )  # fmt: skip
    messages = wait_until(lambda: engine_errors(session_id), timeout_s=30)
    assert "ALLOWED_TARGET_HOSTS" in messages[0] and "127.0.0.2" in messages[0], messages
    assert off_list_server.total == 0
    api.post(f"/api/sessions/{session_id}/stop/")
