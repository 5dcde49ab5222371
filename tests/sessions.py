"""Helpers that drive sessions through the API, as a user would, for the integration tests."""

import itertools

from apps.sessions.models import Endpoint, LoadTestSession, Target

from .conftest import wait_until

_target_numbers = itertools.count(1)
TERMINAL = {"completed", "stopped", "failed"}
# A short think time: enough requests for exact-count checks within a few seconds.
BRISK = {"request_interval_min": 0.05, "request_interval_max": 0.1}


def make_target(api, server, endpoints=(("ping", "/ping", 1.0),)) -> int:
    """A target at ``server`` with endpoints given as (name, path, weight).

    Made directly in the database: the catalog is an administrator's business, and these
    helpers serve tests of running sessions (the catalog API has tests of its own).
    """
    target = Target.objects.create(name=f"counting-{next(_target_numbers)}",
                                   base_url=server.base_url)  # fmt: skip
    for name, path, weight in endpoints:
        Endpoint.objects.create(target=target, name=name, url=path, weight=weight)
    return target.pk


def create_session(api, target_id: int, **config) -> int:
    body = {"session_name": "test", "target": target_id, **config}
    response = api.post("/api/sessions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def start_load(api, server, endpoints=(("ping", "/ping", 1.0),), **config) -> int:
    """Create a target, a session with ``config`` and start it; returns the session id."""
    session_id = create_session(api, make_target(api, server, endpoints), **config)
    started = api.post(f"/api/sessions/{session_id}/start/")
    assert started.status_code == 202, started.json()
    return session_id


def wait_for_status(session_id: int, statuses=TERMINAL, timeout_s: float = 30):
    def reached():
        session = LoadTestSession.objects.get(pk=session_id)
        return session if session.status in statuses else None

    return wait_until(reached, timeout_s)
