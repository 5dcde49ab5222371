"""Live endpoint weights: a running session's request mix changes on every worker within
seconds (the seed's update_weights), validated like a new configuration, and recorded in the
configuration history and as a session event."""

import json
import time

import pytest

from apps.workers.control import HEARTBEATS_KEY

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.traffic import RecentCounts
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TWO_ENDPOINTS = (("fast", "/fast", 1.0), ("slow", "/slow", 1.0))


def counts(server) -> tuple[int, int]:
    return server.count("/fast"), server.count("/slow")


def seconds_until_only_fast(server, timeout_s: float) -> float:
    """Seconds until /slow receives nothing for a whole second while /fast still does."""
    started = time.monotonic()
    recent = RecentCounts(lambda: counts(server), window_s=1.0)

    def only_fast() -> bool:
        lately = recent()
        return lately is not None and lately[0] > 0 and lately[1] == 0

    wait_until(only_fast, timeout_s=timeout_s, interval_s=0.05)
    return time.monotonic() - started - 1.0  # the quiet second proves the change; not lag


def test_patch_changes_the_request_mix_on_every_worker(
    api, workers, counting_server, forget_redis_sessions, redis_client, settings
):
    first, second = workers.ensure("worker", "load-test-1"), workers.ensure("worker", "load-test-2")
    settings.LOAD_SHARD_USERS = 3
    session_id = start_load(
        api, counting_server, TWO_ENDPOINTS, concurrent_users=6, duration_minutes="0", **BRISK
    )
    wait_until(lambda: min(counts(counting_server)) > 10, timeout_s=15)
    beats = [json.loads(raw) for raw in redis_client.hvals(HEARTBEATS_KEY)]
    assert {b["hostname"] for b in beats if b["session"] == session_id} == {first, second}

    url = f"/api/sessions/{session_id}/"
    response = api.patch(url, {"endpoint_weights": {"slow": 0}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["endpoint_weights"] == {"slow": 0}
    # The issue asks for 2 s; the bound is generous for a loaded CI machine.
    took_s = seconds_until_only_fast(counting_server, timeout_s=8)
    print(f"/slow left out on both workers within {took_s:.2f} s")
    assert took_s < 5

    response = api.patch(url, {"endpoint_weights": {"fast": 1, "slow": 3}}, format="json")
    assert response.status_code == 200, response.json()
    # Picked up within 2 s: then three seconds of requests show the new mix.
    recent = RecentCounts(lambda: counts(counting_server), window_s=3.0)

    def the_new_mix() -> tuple[int, ...] | None:
        lately = recent()
        if lately is None or sum(lately) <= 50:
            return None
        return lately if 0.6 < lately[1] / sum(lately) < 0.9 else None

    fast, slow = wait_until(the_new_mix, timeout_s=10, what="The 1:3 mix on both workers")
    print(f"/slow's share after 1:3 weights: {slow / (fast + slow):.2f} of {fast + slow} requests")

    history = api.get(f"{url}history/").json()["results"]  # newest first
    weight_changes = [c for c in history if c["field"] == "endpoint_weights"]
    assert [c["new_value"] for c in weight_changes] == [{"fast": 1, "slow": 3}, {"slow": 0}]
    assert all(c["changed_by"] == "olivia" for c in weight_changes)

    assert api.post(f"{url}stop/").status_code == 202
    session = wait_for_status(session_id, timeout_s=20)
    assert session.total_requests == counting_server.total
    assert session.endpoint_weights == {"fast": 1, "slow": 3}
    messages = [e.message for e in session.events.filter(kind="weights_changed").order_by("at")]
    assert len(messages) == 2 and "slow" in messages[0], messages


def test_live_weights_are_validated_like_a_new_configuration(
    api, viewer_api, workers, counting_server, forget_redis_sessions
):
    endpoints = (*TWO_ENDPOINTS, ("off", "/off", 0.0))
    session_id = start_load(
        api, counting_server, endpoints, concurrent_users=2, duration_minutes="0", **BRISK
    )
    url = f"/api/sessions/{session_id}/"

    def refused(weights, status=400) -> str:
        response = api.patch(url, {"endpoint_weights": weights}, format="json")
        assert response.status_code == status, response.json()
        return json.dumps(response.json())

    assert "Unknown endpoint 'nope'" in refused({"nope": 1})
    assert "from 0 to" in refused({"fast": -1})
    assert "must be a number" in refused({"fast": "x"})
    assert "positive weight" in refused({"fast": 0, "slow": 0})
    assert "Must be an object" in refused([1, 2])
    # Its shards prepared no request for an endpoint left out at start.
    assert "clone" in refused({"off": 1}).lower()
    assert (
        viewer_api.patch(url, {"endpoint_weights": {"slow": 0}}, format="json").status_code == 403
    )
    assert api.get(url).json()["endpoint_weights"] == {}

    api.post(f"{url}stop/")
    wait_for_status(session_id, timeout_s=20)
    refused({"slow": 0}, status=409)
